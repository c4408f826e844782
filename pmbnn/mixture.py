"""The posterior predictive as a mixture: mean_s Normal(f_s(x), sigma_s^2) for each input.

Its quantiles have no closed form; they are solved exactly (to floating point, no sampling
noise) by a compiled kernel, so interval bounds cost less than the forward pass that produced
the draws: one fused pass over the draws per step, blocks of inputs on every core, with no
(draws x inputs) temporaries. Measured for 1000 draws x 1e5 inputs, two levels, on a 2-core
machine while a benchmark held both cores: 15 s on one thread against 64-73 s for the NumPy
Newton solver it replaces, which made `summarize` 1.6x the forward pass on the perf workload.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

QUANTILE_TOL = 1e-12  # predictive sds: a Newton step this small leaves an error ~1e-24 sd
MAX_QUANTILE_STEPS = 100  # a cap only: bisection alone halves 16 sds to 1e-12 in 44 steps
BRACKET_SDS = 8.0  # every component's mass beyond 8 sds is < 1e-15: the root lies inside
# Inputs per call of the kernel, transposed to contiguous rows of draws: bounds the copy and
# is the unit of work of the threads.
BLOCK_INPUTS = 2048


def mixture_quantiles(
    loc: np.ndarray, scale: np.ndarray, levels: tuple[float, ...]
) -> list[np.ndarray]:
    """Quantiles of mean_s Normal(loc[s, n], scale[s]^2) for each input n, one array per level.

    Halley's method on the mixture CDF (its density and the density's slope come from the same
    pass as the CDF) from the moment-matched Normal quantile, kept inside a shrinking bracket (a
    step that leaves it bisects instead), so it cannot diverge on a multimodal mixture; it
    stops when a step is below QUANTILE_TOL predictive sds: 3-5 passes over the draws where
    Newton took 4-7 (measured on near-normal and bimodal mixtures of 1000 draws). Exact up to
    floating point, so a reloaded run predicts the same numbers.
    """
    loc = np.asarray(loc, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    start_z = np.array([ndtri(level) for level in levels], dtype=np.float64)
    level_array = np.array(levels, dtype=np.float64)
    out = np.empty((len(levels), loc.shape[1]))

    def solve(start: int) -> None:
        rows = np.ascontiguousarray(loc[:, start : start + BLOCK_INPUTS].T)
        _solve_quantiles(rows, scale, level_array, start_z, out[:, start : start + len(rows)])

    starts = range(0, loc.shape[1], BLOCK_INPUTS)
    # Plain threads over blocks (the kernel releases the GIL): unlike numba's parallel loops
    # they are safe to call from several threads at once and in a forked child.
    with ThreadPoolExecutor(max_workers=min(len(starts), _cores()) or 1) as pool:
        list(pool.map(solve, starts))
    return list(out)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _solve_quantiles(
    rows: np.ndarray, scale: np.ndarray, levels: np.ndarray, start_z: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested through mixture_quantiles
    n_draws = scale.shape[0]
    inv_scale = 1.0 / scale
    mean_noise_var = np.mean(scale**2)
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    inv_sqrt2pi = 1.0 / math.sqrt(2.0 * math.pi)
    for n in range(rows.shape[0]):
        row = rows[n]
        mean = 0.0
        low0 = math.inf
        high0 = -math.inf
        for s in range(n_draws):
            mean += row[s]
            low0 = min(low0, row[s] - BRACKET_SDS * scale[s])
            high0 = max(high0, row[s] + BRACKET_SDS * scale[s])
        mean /= n_draws
        spread = 0.0
        for s in range(n_draws):
            spread += (row[s] - mean) ** 2
        sd = math.sqrt(spread / n_draws + mean_noise_var)
        for k in range(levels.shape[0]):
            low, high = low0, high0
            q = min(max(mean + start_z[k] * sd, low), high)
            last_step = before_last = high - low
            for _ in range(MAX_QUANTILE_STEPS):
                cdf = 0.0
                density = 0.0
                slope = 0.0  # of the density, for Halley's step
                for s in range(n_draws):
                    z = (q - row[s]) * inv_scale[s]
                    cdf += math.erfc(-z * inv_sqrt2)
                    component = math.exp(-0.5 * z * z) * inv_scale[s]
                    density += component
                    slope -= z * component * inv_scale[s]
                excess = 0.5 * cdf / n_draws - levels[k]
                density *= inv_sqrt2pi / n_draws
                slope *= inv_sqrt2pi / n_draws
                if excess < 0.0:
                    low = q
                else:
                    high = q
                proposal = q - 2.0 * excess * density / (2.0 * density**2 - excess * slope)
                # Bisect where the step leaves the bracket (or is NaN) and where it is not half
                # the step before last: in a flat stretch of the CDF a tiny density makes
                # Newton-type steps crawl (Numerical Recipes' rtsafe safeguard).
                if not (low < proposal < high) or abs(proposal - q) > 0.5 * before_last:
                    proposal = 0.5 * (low + high)
                step = abs(proposal - q)
                before_last, last_step = last_step, step
                q = proposal
                if step <= QUANTILE_TOL * sd:
                    break
            out[k, n] = q


def pointwise_log_likelihood(f: np.ndarray, noise_sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log Normal(y_n | f_s(x_n), sigma_s^2), shape (draws, n)."""
    z = (y[None, :] - f) / noise_sd[:, None]
    return -0.5 * z**2 - np.log(noise_sd)[:, None] - 0.5 * np.log(2.0 * np.pi)


def log_predictive_density(f: np.ndarray, noise_sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log (1/S) sum_s Normal(y_n | f_s(x_n), sigma_s^2) for each n."""
    return logsumexp(pointwise_log_likelihood(f, noise_sd, y), axis=0) - np.log(f.shape[0])


def predictive_cdf(f: np.ndarray, noise_sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(Y_n <= y_n) under the predictive mixture: the PIT value of each observation."""
    return ndtr((y[None, :] - f) / noise_sd[:, None]).mean(axis=0)
