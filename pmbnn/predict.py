"""Posterior draws + new inputs -> predictive mean, sd (epistemic / aleatoric), intervals.

The network is never written here: the model's own output expression is vectorised over a
leading draw axis (``vectorize_graph``) and compiled once, so one call evaluates every draw on a
block of inputs. The posterior predictive for each input is the mixture over draws s of
Normal(f_s(x), sigma_s^2); its moments and quantiles are computed exactly for that mixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import vectorize_graph
from scipy.special import logsumexp, ndtr

from pmbnn.model import NOISE, BnnModel

DEFAULT_LEVELS = (0.05, 0.95)
# Elements of the largest (draws x inputs x units) block evaluated at once: about 256 MB.
BLOCK_ELEMENTS = 32_000_000
BISECTION_STEPS = 48  # halves the bracket (about 16 predictive sds) to ~1e-13 of an sd


class NetworkFunction:
    """f(x) for every posterior draw at once, compiled from the model's own graph."""

    def __init__(self, bnn: BnnModel):
        model = bnn.model
        (output,) = model.replace_rvs_by_values([bnn.output])
        self.weight_names = bnn.weight_names
        values = [model.rvs_to_values[model[name]] for name in self.weight_names]
        batched = [v.type.clone(shape=(None, *v.type.shape))(name=v.name) for v in values]
        new_inputs = pt.matrix("x_new", dtype=bnn.inputs.dtype)
        replace = dict(zip(values, batched, strict=True)) | {bnn.inputs: new_inputs}
        vectorised = vectorize_graph(output, replace=replace)
        self._fn = pytensor.function([new_inputs, *batched], vectorised)
        self._widest = max([bnn.inputs.get_value().shape[1], *_layer_widths(model)])

    def __call__(self, posterior: xr.Dataset, x: np.ndarray) -> np.ndarray:
        """Network outputs, shape (draws, inputs), draws flattened chain-major."""
        weights = [_flat_draws(posterior[name]) for name in self.weight_names]
        n_draws = weights[0].shape[0]
        block = max(1, BLOCK_ELEMENTS // (n_draws * self._widest))
        x = np.asarray(x, dtype=float)
        parts = [self._fn(x[i : i + block], *weights) for i in range(0, len(x), block)]
        return np.concatenate(parts, axis=1) if parts else np.empty((n_draws, 0))


@dataclass(frozen=True)
class Prediction:
    """Posterior predictive summaries for each input, in the target's original units."""

    mean: np.ndarray
    sd_epistemic: np.ndarray  # spread of f(x) over draws: what more data would shrink
    sd_aleatoric: np.ndarray  # sqrt of E[sigma^2]: noise the data itself carries
    sd_total: np.ndarray  # sqrt of the sum of both variances (law of total variance)
    quantiles: dict[float, np.ndarray]  # level -> central interval bound of y
    function_draws: xr.DataArray  # f(x) per draw, dims (chain, draw, obs)

    def to_frame(self) -> pd.DataFrame:
        columns = {
            "mean": self.mean,
            "sd_total": self.sd_total,
            "sd_epistemic": self.sd_epistemic,
            "sd_aleatoric": self.sd_aleatoric,
        }
        columns |= {f"q{round(level * 100):02d}": q for level, q in self.quantiles.items()}
        return pd.DataFrame(columns)


def noise_draws(posterior: xr.Dataset, fixed_sigma: float | None) -> np.ndarray:
    """sigma per draw (flattened), or the fixed value repeated."""
    if fixed_sigma is not None:
        n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
        return np.full(n_draws, float(fixed_sigma))
    return _flat_draws(posterior[NOISE])


def summarize(
    f: np.ndarray,
    noise_sd: np.ndarray,
    posterior: xr.Dataset,
    levels: tuple[float, ...] = DEFAULT_LEVELS,
) -> Prediction:
    """Moments and quantiles of the mixture over draws of Normal(f_s, sigma_s^2)."""
    mean = f.mean(axis=0)
    var_epistemic = f.var(axis=0)
    var_aleatoric = np.full_like(mean, np.mean(noise_sd**2))
    draws = xr.DataArray(
        f.reshape(posterior.sizes["chain"], posterior.sizes["draw"], -1),
        dims=("chain", "draw", "obs"),
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values},
        name="f",
    )
    return Prediction(
        mean=mean,
        sd_epistemic=np.sqrt(var_epistemic),
        sd_aleatoric=np.sqrt(var_aleatoric),
        sd_total=np.sqrt(var_epistemic + var_aleatoric),
        quantiles=dict(zip(levels, mixture_quantiles(f, noise_sd, levels), strict=True)),
        function_draws=draws,
    )


def mixture_quantiles(
    loc: np.ndarray, scale: np.ndarray, levels: tuple[float, ...]
) -> list[np.ndarray]:
    """Quantiles of mean_s Normal(loc[s, n], scale[s]^2) for each n, by vectorised bisection.

    Exact up to floating point (no sampling noise), so a reloaded run predicts the same numbers.
    """
    n_draws = loc.shape[0]
    block = max(1, BLOCK_ELEMENTS // max(n_draws, 1) // 4)
    results = [np.empty(loc.shape[1]) for _ in levels]
    for start in range(0, loc.shape[1], block):
        part = loc[:, start : start + block]
        for level, out in zip(levels, results, strict=True):
            lo = (part - 8.0 * scale[:, None]).min(axis=0)
            hi = (part + 8.0 * scale[:, None]).max(axis=0)
            for _ in range(BISECTION_STEPS):
                mid = 0.5 * (lo + hi)
                below = ndtr((mid - part) / scale[:, None]).mean(axis=0) < level
                lo = np.where(below, mid, lo)
                hi = np.where(below, hi, mid)
            out[start : start + block] = 0.5 * (lo + hi)
    return results


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


def _flat_draws(values: xr.DataArray) -> np.ndarray:
    array = values.transpose("chain", "draw", ...).values
    return array.reshape(-1, *array.shape[2:])


def _layer_widths(model: object) -> list[int]:
    return [len(values) for dim, values in model.coords.items() if dim.startswith("unit_")]
