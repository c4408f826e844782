"""Prediction maths: mixture quantiles, log density, and the vectorised forward pass."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from pmbnn.predict import log_predictive_density, mixture_quantiles
from pmbnn.run import load_run


def test_single_draw_quantiles_are_normal_quantiles():
    loc, scale = np.array([[1.0, -2.0]]), np.array([0.5])
    lower, upper = mixture_quantiles(loc, scale, (0.05, 0.95))
    np.testing.assert_allclose(lower, norm.ppf(0.05, loc[0], 0.5), atol=1e-10)
    np.testing.assert_allclose(upper, norm.ppf(0.95, loc[0], 0.5), atol=1e-10)


def test_mixture_quantile_solves_the_mixture_cdf():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(50, 7)), rng.uniform(0.1, 2.0, size=50)
    (q,) = mixture_quantiles(loc, scale, (0.9,))
    cdf = norm.cdf((q[None, :] - loc) / scale[:, None]).mean(axis=0)
    np.testing.assert_allclose(cdf, 0.9, atol=1e-10)


def test_log_predictive_density_is_log_mean_density():
    rng = np.random.default_rng(1)
    f, sigma, y = rng.normal(size=(30, 4)), rng.uniform(0.5, 1.5, 30), rng.normal(size=4)
    expected = np.log(norm.pdf(y[None, :], f, sigma[:, None]).mean(axis=0))
    np.testing.assert_allclose(log_predictive_density(f, sigma, y), expected, rtol=1e-12)


def test_vectorised_network_equals_a_per_draw_forward_pass(small_advi_run):
    fitted = load_run(small_advi_run)
    post = fitted.posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    x = np.linspace(-5, 5, 13)[:, None]
    z = fitted.scaler.x(x)
    expected = np.stack(
        [
            np.tanh(z @ post["w_0"].values[s] + post["b_0"].values[s]) @ post["w_out"].values[s]
            + post["b_out"].values[s]
            for s in range(post.sizes["sample"])
        ]
    )
    f, sigma = fitted.draws(x)
    np.testing.assert_allclose(f, expected * fitted.scaler.y_scale + fitted.scaler.y_mean)
    np.testing.assert_allclose(sigma, post["sigma"].values * fitted.scaler.y_scale)
    prediction = fitted.predict(x)
    np.testing.assert_allclose(prediction.mean, f.mean(axis=0))
    np.testing.assert_allclose(prediction.sd_epistemic, f.std(axis=0))
    assert prediction.function_draws.dims == ("chain", "draw", "obs")
