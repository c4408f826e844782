"""Poisson: a count target, rate exp(f(x)). Interval bounds are counts; the predictive
distribution is the mixture over draws of Poisson(rate_s(x))."""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special, stats

from pmbnn.families.base import (
    Family,
    NetworkOutputs,
    PredictiveDraws,
    bad_row,
    interval_levels,
    regression_scores,
)
from pmbnn.families.summaries import Prediction
from pmbnn.trace import OBSERVED

PIT_SEED = 2  # the randomized PIT's uniforms: fixed, so a report is reproducible


class Poisson(Family):
    name = "poisson"
    continuous = False

    def check_target(self, y: np.ndarray, column: str, source: str) -> None:
        bad_row(
            "family = 'poisson' models counts (whole numbers >= 0); fix the value, or choose "
            "family = 'gaussian' for a real-valued target",
            column, source, y, (y < 0) | (y != np.round(y)),
        )  # fmt: skip

    def model_values(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y).astype(np.int64)

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        pm.Poisson(OBSERVED, mu=pt.exp(output), observed=observed, **kwargs)

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        return PoissonDraws(net.values)


class PoissonDraws(PredictiveDraws):
    """Poisson(exp(log_rate[s, n])); `network` is the log rate."""

    def __init__(self, log_rate: np.ndarray):
        self.network = log_rate
        self.rate = np.exp(log_rate)

    def log_density(self, y: np.ndarray) -> np.ndarray:
        return stats.poisson.logpmf(y[None, :], self.rate)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.rate).astype(float)

    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> Prediction:
        mean = self.rate.mean(axis=0)
        var_epistemic = self.rate.var(axis=0)
        return Prediction(
            mean=mean,
            sd_epistemic=np.sqrt(var_epistemic),
            sd_aleatoric=np.sqrt(mean),  # a Poisson's variance is its rate
            sd_total=np.sqrt(var_epistemic + mean),
            quantiles={level: self._quantile(level) for level in levels},
            function_draws=function_draws,  # type: ignore[arg-type]
        )

    def _quantile(self, level: float) -> np.ndarray:
        """The smallest count k with mean_s P(Y <= k | rate_s) >= level, by bisection over the
        counts between the smallest and largest component quantile (the mixture's lies there)."""
        components = stats.poisson.ppf(level, self.rate)
        low, high = components.min(axis=0), components.max(axis=0)
        while np.any(low < high):
            middle = np.floor((low + high) / 2)
            reached = special.pdtr(middle, self.rate).mean(axis=0) >= level
            high, low = np.where(reached, middle, high), np.where(reached, low, middle + 1)
        return low

    def location(self) -> np.ndarray:
        return self.rate

    def interval_probability(
        self, lower: np.ndarray, upper: np.ndarray, level: float
    ) -> np.ndarray:
        """The mixture's mass on the counts lower..upper: at least `level`, since the ends are
        whole counts (a calibrated Poisson with rate 0.7 puts 0.97 on its "90%" interval)."""
        below = np.where(lower > 0, special.pdtr(np.maximum(lower - 1, 0), self.rate), 0.0)
        return special.pdtr(upper, self.rate).mean(axis=0) - below.mean(axis=0)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """The randomized PIT of a count (Czado, Gneiting & Held, 2009): F(y - 1) + v (F(y) -
        F(y - 1)), v ~ U(0, 1) from a fixed seed, Uniform(0, 1) when the predictive is right
        (the plain F(y) of a count is not)."""
        below = np.where(y > 0, special.pdtr(np.maximum(y - 1, 0), self.rate), 0.0).mean(axis=0)
        upto = special.pdtr(y, self.rate).mean(axis=0)
        v = np.random.default_rng(PIT_SEED).random(len(y))
        return below + v * (upto - below)

    def scores(self, y: np.ndarray) -> dict[str, float]:
        prediction = self.summarize(interval_levels(()))
        mu = prediction.mean
        # Mean Poisson deviance of the predictive mean (scikit-learn's mean_poisson_deviance).
        deviance = 2 * (special.xlogy(y, y / mu) - (y - mu))
        return regression_scores(self, prediction, y) | {"deviance": float(deviance.mean())}
