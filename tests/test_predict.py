"""Prediction maths: mixture quantiles, log density, and the vectorised forward pass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import ndtr
from scipy.stats import norm

from pmbnn.errors import PmbnnError
from pmbnn.mixture import log_predictive_density, mixture_quantiles
from pmbnn.run import load_run


def test_single_draw_quantiles_are_normal_quantiles():
    loc, scale = np.array([[1.0, -2.0]]), np.array([0.5])
    lower, upper = mixture_quantiles(loc, scale, (0.05, 0.95))
    np.testing.assert_allclose(lower, norm.ppf(0.05, loc[0], 0.5), atol=1e-10)
    np.testing.assert_allclose(upper, norm.ppf(0.95, loc[0], 0.5), atol=1e-10)


@pytest.mark.parametrize("level", [1e-18, 1e-40])
def test_extreme_levels_are_solved_not_clipped_to_the_bracket(level):
    """Past 8 sds (levels beyond 1e-15 from 0 or 1) the bracket widens with the level: the
    quantile of a single Gaussian is its own, to the solver's tolerance."""
    loc, scale = np.array([[1.0, -2.0]]), np.array([0.5])
    (q,) = mixture_quantiles(loc, scale, (level,))
    np.testing.assert_allclose(q, norm.ppf(level, loc[0], 0.5), atol=1e-9)
    assert np.all(np.abs(q - loc[0]) > 8 * 0.5)


def test_mixture_quantile_solves_the_mixture_cdf():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(50, 7)), rng.uniform(0.1, 2.0, size=50)
    (q,) = mixture_quantiles(loc, scale, (0.9,))
    cdf = norm.cdf((q[None, :] - loc) / scale[:, None]).mean(axis=0)
    np.testing.assert_allclose(cdf, 0.9, atol=1e-10)


def _reference_quantile(loc: np.ndarray, scale: np.ndarray, level: float) -> float:
    """Brent's method on the mixture CDF of one input: slow, simple and exact."""

    def excess(q: float) -> float:
        return float(ndtr((q - loc) / scale).mean() - level)

    low, high = (loc - 9 * scale).min(), (loc + 9 * scale).max()
    return brentq(excess, low, high, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)


def _mixtures() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    near_normal = (0.1 * rng.normal(size=(1000, 40)), rng.uniform(0.2, 0.4, 1000))
    bimodal = (
        np.where(rng.random((400, 40)) < 0.3, 2.0, 0.0) + 0.1 * rng.normal(size=(400, 40)),
        rng.uniform(0.05, 0.3, 400),
    )
    far_out = rng.normal(size=(300, 40))
    far_out[0] = 1e4  # one draw far from every other: a component of its own
    heavy = (rng.standard_t(2, size=(500, 40)), rng.uniform(1e-3, 1e-2, 500))
    tiny_and_huge = (rng.normal(size=(200, 40)), np.r_[np.full(100, 1e-9), np.full(100, 1e6)])
    return {
        "near normal": near_normal,
        "bimodal": bimodal,
        "one draw far out": (far_out, rng.uniform(0.5, 1.0, 300)),
        "heavy tailed, tiny sds": heavy,
        "tiny and huge sds": tiny_and_huge,
        "one dominant sd": (rng.normal(size=(300, 40)), np.r_[1e3, np.full(299, 1e-2)]),
    }


@pytest.mark.parametrize("name", list(_mixtures()))
def test_quantiles_equal_a_root_finder_on_extreme_mixtures(name):
    """The compiled solver's bound is a quantile to the solver's tolerance: within 1e-9
    predictive sds of Brent's root of the same CDF (the stopping rule allows 1e-12), or, where
    the level falls on a flat stretch of a staircase mixture (any point there is a quantile),
    its CDF is the level to 1e-10."""
    loc, scale = _mixtures()[name]
    levels = (0.001, 0.05, 0.5, 0.95, 0.999)
    sd = np.sqrt(loc.var(axis=0) + np.mean(scale**2))
    for level, fast in zip(levels, mixture_quantiles(loc, scale, levels), strict=True):
        cdf = ndtr((fast[None, :] - loc) / scale[:, None]).mean(axis=0)
        reference = np.array(
            [_reference_quantile(loc[:, n], scale, level) for n in range(loc.shape[1])]
        )
        close = np.abs(fast - reference) <= 1e-9 * sd
        solved = np.abs(cdf - level) <= 1e-10
        wrong = ~(close | solved)
        assert not wrong.any(), (name, level, fast[wrong], reference[wrong], cdf[wrong])


def test_quantiles_of_many_inputs_are_computed_block_by_block():
    """More inputs than one transposed block: every column is solved, in its own place."""
    rng = np.random.default_rng(4)
    loc, scale = rng.normal(size=(3, 9000)), np.array([0.5, 1.0, 2.0])
    (q,) = mixture_quantiles(loc, scale, (0.3,))
    cdf = ndtr((q[None, :] - loc) / scale[:, None]).mean(axis=0)
    np.testing.assert_allclose(cdf, 0.3, atol=1e-10)
    assert mixture_quantiles(loc[:, :0], scale, (0.3, 0.7))[1].shape == (0,)


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
    distribution = fitted.distribution(x)
    f, sigma = distribution.loc, distribution.scale
    np.testing.assert_allclose(f, expected * fitted.scaler.y_scale + fitted.scaler.y_mean)
    np.testing.assert_allclose(sigma, post["sigma"].values * fitted.scaler.y_scale)
    prediction = fitted.predict(x)
    np.testing.assert_allclose(prediction.mean, f.mean(axis=0))
    np.testing.assert_allclose(prediction.sd_epistemic, f.std(axis=0))
    assert prediction.function_draws.dims == ("chain", "draw", "obs")


def test_quantile_levels_are_probabilities_each_with_its_own_column(small_advi_run):
    """(0.025, 0.975) once became columns q02 and q98, levels a step apart shared one column,
    and 95 (a percent) blamed the input for an overflow."""
    fitted = load_run(small_advi_run)
    x = np.zeros((3, len(fitted.feature_names)))
    frame = fitted.predict_frame(x, levels=(0.025, 0.5, 0.975))
    assert [c for c in frame.columns if c.startswith("q")] == ["q2.5", "q50", "q97.5"]
    for levels, message in [((95,), "level 95 is not a probability"), ((0.0, 1.0), "0.0 is not"),
                            ((0.001, 0.001), "repeat a level")]:  # fmt: skip
        with pytest.raises(PmbnnError, match=message):
            fitted.predict(x, levels=levels)
