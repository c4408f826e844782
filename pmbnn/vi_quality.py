"""How good is a variational fit? log p(theta, y) and log q(theta) at the draws from q.

Their difference is the importance ratio whose Pareto k-hat (PSIS) tells whether q is close
enough to the posterior for its expectations to be trusted (Yao, Vehtari, Simpson and Gelman
2018, "Yes, but did it work?: Evaluating variational inference"). Both densities are in the
unconstrained space q lives in (log sigma, with its Jacobian), evaluated at the stored draws, so
the same pair also serves PSIS-LOO for approximate posteriors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import arviz_stats  # noqa: F401  (registers the .azstats accessor)
import numpy as np
import xarray as xr
from scipy.linalg import solve_triangular

from pmbnn.fitted import FittedBnn
from pmbnn.trace import VI_APPROXIMATION, flat_draws, n_samples, sample_dataarray

MIN_DRAWS_FOR_KHAT = 25


@dataclass(frozen=True)
class ImportanceDensities:
    """log p (unnormalised joint) and log q at each draw, dims (chain, draw)."""

    log_p: xr.DataArray
    log_q: xr.DataArray

    @property
    def log_ratio(self) -> xr.DataArray:
        return self.log_p - self.log_q

    def pareto_k(self) -> float:
        """k-hat of the right tail of the importance ratios (draws from q are independent).

        Raises ValueError with fewer than MIN_DRAWS_FOR_KHAT draws: the tail PSIS fits needs
        at least 5 of them, 20% of the draws.
        """
        # psislw follows PSIS-LOO's convention: it takes a log-likelihood and weights by its
        # negative, so the log ratio goes in negated. (pareto_khat(log_weights=True) fits the
        # log weights themselves rather than the weights: k near 0 for any q.)
        _, khat = (-self.log_ratio).azstats.psislw(dim=["chain", "draw"], r_eff=1.0)
        return float(khat)


def has_approximation(fitted: FittedBnn) -> bool:
    return VI_APPROXIMATION in fitted.trace.children


def importance_densities(fitted: FittedBnn) -> ImportanceDensities:
    """log p(theta_s, y) and log q(theta_s) for every stored draw theta_s of a VI run."""
    q = fitted.trace[VI_APPROXIMATION].to_dataset()
    ordering = json.loads(q.attrs["ordering"])
    posterior = fitted.posterior
    model = fitted.model.model

    flat = np.empty((n_samples(posterior), q.sizes["flat_param"]))
    points: list[dict[str, np.ndarray]] = [{} for _ in range(len(flat))]
    for value_name, rv_name, start, stop in ordering:
        values = flat_draws(posterior[rv_name])
        transform = model.rvs_to_transforms[model[rv_name]]
        if transform is not None:  # elementwise (log for sigma): any shape
            values = transform.forward(values).eval()
        flat[:, start:stop] = values.reshape(len(flat), -1)
        for point, value in zip(points, values, strict=True):
            point[value_name] = value

    joint_logp = model.compile_logp(jacobian=True)
    log_p = np.array([joint_logp(point) for point in points])
    log_q = _gaussian_logpdf(flat, q)
    return ImportanceDensities(
        log_p=sample_dataarray(log_p, posterior), log_q=sample_dataarray(log_q, posterior)
    )


def _gaussian_logpdf(flat: np.ndarray, q: xr.Dataset) -> np.ndarray:
    """log N(flat_s | mean, L L^T) with L diagonal (mean field) or lower triangular."""
    centred = flat - q["mean"].values
    if "cholesky" in q:
        cholesky = q["cholesky"].values
        z = solve_triangular(cholesky, centred.T, lower=True).T
        log_det = np.log(np.diag(cholesky)).sum()
    else:
        z = centred / q["sd"].values
        log_det = np.log(q["sd"].values).sum()
    return -0.5 * (z**2).sum(axis=1) - log_det - 0.5 * flat.shape[1] * np.log(2.0 * np.pi)
