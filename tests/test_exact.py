"""Exactness: with no hidden layer and fixed noise the model is Bayesian linear regression,
whose posterior predictive is known in closed form. Tolerances are Monte Carlo errors."""

from __future__ import annotations

import numpy as np
import pytest
from arviz_stats import ess

from pmbnn.inference.samplers import SAMPLERS
from pmbnn.pipeline import fit
from pmbnn.vi_quality import importance_densities
from tests.helpers import BLR_NOISE_SD, BLR_PROBES, exact_posterior, require_extra

Z = 4.0  # |error| <= 4 MCSE: a false alarm has probability ~6e-5 per comparison


def closed_form(csv, spec):
    """Posterior predictive mean and epistemic sd of f(x) at BLR_PROBES."""
    mean, cov = exact_posterior(csv, spec)
    probes = np.c_[BLR_PROBES, np.ones(len(BLR_PROBES))]
    return probes @ mean, np.sqrt(np.einsum("ij,jk,ik->i", probes, cov, probes))


def check_against_closed_form(fitted, exact_mean, exact_sd, effective_draws):
    prediction = fitted.predict(BLR_PROBES)
    # MCSE of a mean is sd / sqrt(ESS); of an sd estimate, sd / sqrt(2 ESS) for Gaussian draws.
    mcse_mean = exact_sd / np.sqrt(effective_draws)
    mcse_sd = exact_sd / np.sqrt(2 * effective_draws)
    np.testing.assert_array_less(np.abs(prediction.mean - exact_mean), Z * mcse_mean)
    np.testing.assert_array_less(np.abs(prediction.sd_epistemic - exact_sd), Z * mcse_sd)
    # Fixed noise: the aleatoric part is exactly sigma and the total adds in quadrature.
    np.testing.assert_allclose(prediction.sd_aleatoric, BLR_NOISE_SD)
    np.testing.assert_allclose(prediction.sd_total**2, prediction.sd_epistemic**2 + BLR_NOISE_SD**2)


@pytest.mark.parametrize("sampler", ["pymc", "nutpie", "numpyro", "blackjax"])
def test_nuts_matches_closed_form(blr_csv, blr_spec, sampler):
    """Every NUTS backend draws from the exact posterior, in the same trace layout."""
    require_extra(*SAMPLERS[sampler].modules)
    spec = blr_spec.with_overrides(
        inference={"method": "nuts", "draws": 1000, "tune": 500, "sampler": sampler}
    )
    fitted, _ = fit(spec)
    posterior, stats = fitted.trace["posterior"], fitted.trace["sample_stats"]
    assert dict(posterior.sizes) | {"chain": 2, "draw": 1000} == dict(posterior.sizes)
    for name in ("diverging", "energy", "tree_depth", "reached_max_treedepth"):
        assert stats[name].shape == (2, 1000), name
    exact_mean, exact_sd = closed_form(blr_csv, spec)
    draws = fitted.predict(BLR_PROBES).function_draws
    effective = ess(draws, method="bulk").values  # per probe, from the chains themselves
    assert np.all(effective > 400), effective
    check_against_closed_form(fitted, exact_mean, exact_sd, effective)


@pytest.mark.slow
def test_fullrank_advi_matches_closed_form(blr_csv, blr_spec):
    # The posterior is Gaussian, so the full-rank family contains it: at the optimum ADVI is
    # exact. 100k iterations give plateau windows of 5k, long enough for the reduce-on-plateau
    # schedule to remove the optimizer noise (measured: <= 2 MCSE at every probe);
    # the only error left is that of the independent draws (ESS = number of draws).
    draws = 4000
    spec = blr_spec.with_overrides(
        inference={"method": "fullrank_advi", "iterations": 100_000, "draws": draws}
    )
    fitted, _ = fit(spec)
    exact_mean, exact_sd = closed_form(blr_csv, spec)
    check_against_closed_form(fitted, exact_mean, exact_sd, draws)
    # q is (nearly) the posterior, so the importance ratios p/q are nearly constant and their
    # Pareto k is far below the 0.5 that diagnose accepts.
    assert importance_densities(fitted).pareto_k() < 0.5
