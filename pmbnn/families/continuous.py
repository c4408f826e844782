"""Families of a real-valued target: Gaussian, Student-t, heteroscedastic Gaussian, log-normal.

Each models the (standardized, for log-normal log-transformed) target with a location from the
network's first output; they differ in the noise. The predictive distribution is the mixture
over draws of the conditional distributions; moments and quantiles are those of the mixture,
exact (mixture.py), never sampled.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
from pmbnn.mixture import (
    QUANTILE_TOL,
    bracketed_quantiles,
    mixture_quantiles,
    per_input,
    pointwise_log_likelihood,
    predictive_cdf,
)
from pmbnn.trace import NOISE, NU, OBSERVED, TARGET_SCALE, flat_draws


class GaussianDraws(PredictiveDraws):
    """Normal(loc[s, n], scale^2), scale (draws,) or (draws, inputs)."""

    def __init__(self, loc: np.ndarray, scale: np.ndarray, learned_noise: bool):
        self.loc, self.scale = loc, scale
        self.network = loc
        self._learned_noise = learned_noise

    def log_density(self, y: np.ndarray) -> np.ndarray:
        return pointwise_log_likelihood(self.loc, self.scale, y)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.loc + per_input(self.scale) * rng.standard_normal(self.loc.shape)

    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> Prediction:
        noise_var = np.broadcast_to(per_input(self.scale) ** 2, self.loc.shape).mean(axis=0)
        quantiles = mixture_quantiles(self.loc, self.scale, levels)
        return _prediction(self.loc, noise_var, levels, quantiles, function_draws)

    def location(self) -> np.ndarray:
        return self.loc

    def noise(self) -> dict[str, np.ndarray]:
        return {NOISE: self.scale} if self._learned_noise or self.scale.ndim == 2 else {}

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return predictive_cdf(self.loc, self.scale, y)

    def scores(self, y: np.ndarray) -> dict[str, float]:
        return regression_scores(self, self.summarize(interval_levels(())), y)


class Gaussian(Family):
    name = "gaussian"
    noise_variables: ClassVar[tuple[str, ...]] = (NOISE,)

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        sigma = self._sigma(target_scale)
        pm.Normal(OBSERVED, mu=output, sigma=sigma, observed=observed, **kwargs)

    def _sigma(self, target_scale: Any) -> Any:
        """The noise sd on the model's (standardized) scale: learned there, with a prior
        relative to the target's spread; a fixed sd is the user's, in the target's units."""
        if self.settings.learned_noise:
            return pm.HalfNormal(NOISE, self.settings.sigma_prior_scale)
        # Data, not a constant: a refitted model's next rows have another target sd.
        return self.settings.sigma / pm.Data(TARGET_SCALE, target_scale)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {NOISE: ()} if self.settings.learned_noise else {}

    def _noise_sd(self, net: NetworkOutputs) -> np.ndarray:
        """The noise sd per draw in the target's units (of log y for lognormal)."""
        if self.settings.learned_noise:
            return flat_draws(net.posterior[NOISE]) * net.y_scale
        assert self.settings.sigma is not None
        return np.full(len(net.values), float(self.settings.sigma))

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        loc = net.values * net.y_scale + net.y_mean
        sigma = self._noise_sd(net)
        return GaussianDraws(loc, sigma, self.settings.learned_noise)


class LogNormal(Gaussian):
    """log y ~ Normal(f(x), sigma): a positive, skewed target; predictions in y's units."""

    name = "lognormal"

    def check_target(self, y: np.ndarray, column: str, source: str) -> None:
        bad_row(
            "family = 'lognormal' models a positive target (log y); remove the rows with "
            "y <= 0, or shift the target, or choose family = 'gaussian'",
            column, source, y, y <= 0,
        )  # fmt: skip

    def transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y)

    def untransform(self, y: np.ndarray) -> np.ndarray:
        return np.exp(y)

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        normal = super().draws(net)
        assert isinstance(normal, GaussianDraws)
        return LogNormalDraws(normal.loc, normal.scale, self.settings.learned_noise)


class LogNormalDraws(GaussianDraws):
    """exp of Normal(loc, scale^2): loc and scale are log y's."""

    def log_density(self, y: np.ndarray) -> np.ndarray:
        log_y = np.log(y)
        return pointwise_log_likelihood(self.loc, self.scale, log_y) - log_y[None, :]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.exp(super().sample(rng))

    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> Prediction:
        variance = per_input(self.scale) ** 2
        conditional_mean = np.exp(self.loc + variance / 2)
        conditional_var = np.expm1(variance) * conditional_mean**2
        # exp is increasing: the mixture's quantiles are exp of log y's mixture quantiles.
        quantiles = [np.exp(q) for q in mixture_quantiles(self.loc, self.scale, levels)]
        return _prediction(
            conditional_mean, conditional_var.mean(axis=0), levels, quantiles, function_draws
        )

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return predictive_cdf(self.loc, self.scale, np.log(y))

    def expected(self) -> np.ndarray:
        return np.exp(self.loc + per_input(self.scale) ** 2 / 2)


class HeteroscedasticGaussian(Family):
    """y ~ Normal(f(x), exp(g(x))^2): the network's second output g is the log noise sd."""

    name = "heteroscedastic_gaussian"

    def n_outputs(self, classes: list | None) -> int:
        return 2

    def output_names(self, classes: list | None) -> list[str]:
        return ["mean", "log_sigma"]

    def head_scales(self) -> dict[int, float]:
        assert self.settings.noise_head_scale is not None
        return {1: self.settings.noise_head_scale}

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        sigma = pt.exp(output[:, 1])
        pm.Normal(OBSERVED, mu=output[:, 0], sigma=sigma, observed=observed, **kwargs)

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        loc = net.values[..., 0] * net.y_scale + net.y_mean
        scale = np.exp(net.values[..., 1]) * net.y_scale
        draws = GaussianDraws(loc, scale, learned_noise=True)
        draws.network = np.stack([loc, np.log(scale)], axis=-1)
        draws.network_dims = ("obs", "output")
        draws.network_coords = {"output": self.output_names(None)}
        return draws


class StudentT(Gaussian):
    """y ~ StudentT(nu, f(x), sigma): Gaussian regression whose noise has heavier tails, so
    that a few gross outliers do not drag the mean."""

    name = "student_t"
    noise_variables: ClassVar[tuple[str, ...]] = (NOISE, NU)

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        nu = self.settings.nu
        if nu is None:
            nu = pm.Gamma(NU, alpha=2.0, beta=self.settings.nu_prior_rate)
        sigma = self._sigma(target_scale)
        pm.StudentT(OBSERVED, nu=nu, mu=output, sigma=sigma, observed=observed, **kwargs)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return super().parameter_shapes() | ({NU: ()} if self.settings.nu is None else {})

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        loc = net.values * net.y_scale + net.y_mean
        sigma = self._noise_sd(net)
        if self.settings.nu is None:
            nu = flat_draws(net.posterior[NU])
        else:
            nu = np.full(len(net.values), float(self.settings.nu))
        return StudentTDraws(loc, sigma, nu, self.settings.learned_noise, self.settings.nu is None)


class StudentTDraws(PredictiveDraws):
    """StudentT(nu_s, loc[s, n], scale_s)."""

    def __init__(
        self, loc: np.ndarray, scale: np.ndarray, nu: np.ndarray, learned: bool, learned_nu: bool
    ):
        self.loc, self.scale, self.nu = loc, scale, nu
        self.network = loc
        self._learned, self._learned_nu = learned, learned_nu

    def log_density(self, y: np.ndarray) -> np.ndarray:
        return stats.t.logpdf(y[None, :], self.nu[:, None], self.loc, self.scale[:, None])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        t = rng.standard_t(np.broadcast_to(self.nu[:, None], self.loc.shape))
        return self.loc + self.scale[:, None] * t

    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> Prediction:
        nu, scale = self.nu[:, None], self.scale[:, None]
        # Var = scale^2 nu / (nu - 2) exists only for nu > 2: where a draw has nu <= 2 the
        # mixture's variance is infinite, and the sds say so (inf) rather than a finite guess.
        if np.all(self.nu > 2):
            noise_var = np.full(self.loc.shape[1], np.mean(scale**2 * nu / (nu - 2)))
        else:
            noise_var = np.full(self.loc.shape[1], np.inf)

        def cdf(q: np.ndarray, rows: slice) -> np.ndarray:
            return special.stdtr(nu, (q - self.loc[:, rows]) / scale).mean(axis=0)

        def pdf(q: np.ndarray, rows: slice) -> np.ndarray:
            z = (q - self.loc[:, rows]) / scale
            return (stats.t.pdf(z, nu) / scale).mean(axis=0)

        def component_quantile(level: float, rows: slice) -> np.ndarray:
            return self.loc[:, rows] + scale * special.stdtrit(nu, level)

        tolerance = QUANTILE_TOL * float(np.median(self.scale))
        quantiles = bracketed_quantiles(
            cdf, pdf, component_quantile, self.loc.shape[1], levels, tolerance
        )
        # "mean": the mean of the locations, which is the predictive mean where it exists
        # (every nu > 1) and the mixture's centre of symmetry per draw otherwise.
        return _prediction(self.loc, noise_var, levels, quantiles, function_draws)

    def location(self) -> np.ndarray:
        return self.loc

    def noise(self) -> dict[str, np.ndarray]:
        judged = {NOISE: self.scale} if self._learned else {}
        return judged | ({NU: self.nu} if self._learned_nu else {})

    def cdf(self, y: np.ndarray) -> np.ndarray:
        z = (y[None, :] - self.loc) / self.scale[:, None]
        return special.stdtr(self.nu[:, None], z).mean(axis=0)

    def scores(self, y: np.ndarray) -> dict[str, float]:
        return regression_scores(self, self.summarize(interval_levels(())), y)


def _prediction(
    conditional_mean: np.ndarray,
    noise_var: np.ndarray,
    levels: tuple[float, ...],
    quantiles: list[np.ndarray],
    function_draws: xr.DataArray | None,
) -> Prediction:
    """Law of total variance: the spread of the conditional means plus the mean noise."""
    mean = conditional_mean.mean(axis=0)
    var_epistemic = conditional_mean.var(axis=0)
    return Prediction(
        mean=mean,
        sd_epistemic=np.sqrt(var_epistemic),
        sd_aleatoric=np.sqrt(noise_var),
        sd_total=np.sqrt(var_epistemic + noise_var),
        quantiles=dict(zip(levels, quantiles, strict=True)),
        function_draws=function_draws,  # type: ignore[arg-type]
    )
