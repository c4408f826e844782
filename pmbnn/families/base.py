"""What every likelihood family says about itself: the network outputs it needs, its target,
its PyMC likelihood, and (through its `PredictiveDraws`) everything predicted from draws."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from pmbnn.errors import PmbnnError
from pmbnn.families.summaries import ClassPrediction, Prediction

if TYPE_CHECKING:
    from pmbnn.spec import LikelihoodSpec

INTERVAL = 0.9  # the central predictive interval whose coverage is reported


class Family(ABC):
    """One likelihood: created from the spec's ``[likelihood]`` section.

    ``continuous`` families have their target standardized (after `transform`); the others
    model it in its own units. ``labelled`` families take class labels as targets.
    """

    name: ClassVar[str]
    continuous: ClassVar[bool] = True
    labelled: ClassVar[bool] = False
    # Posterior variables (besides the weights) that the likelihood adds: judged in diagnose.
    noise_variables: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: LikelihoodSpec):
        self.settings = settings

    # -- the target ------------------------------------------------------------------------
    def check_target(self, y: np.ndarray, column: str, source: str) -> None:  # noqa: B027
        """Raise PmbnnError (column, value, row) for a numeric target value the family cannot
        model; the default accepts every finite number."""

    def encode_labels(
        self, values: pd.Series, column: str, source: str, classes: list | None
    ) -> tuple[np.ndarray, list]:
        raise NotImplementedError  # labelled families only

    def transform(self, y: np.ndarray) -> np.ndarray:
        """The target on the scale the likelihood models (before standardization)."""
        return y

    def untransform(self, y: np.ndarray) -> np.ndarray:
        """The inverse of `transform`."""
        return y

    def model_values(self, y: np.ndarray) -> np.ndarray:
        """The (scaled) target as the model's data container holds it."""
        return np.asarray(y, dtype=float)

    # -- the model -------------------------------------------------------------------------
    def n_outputs(self, classes: list | None) -> int:
        return 1

    def output_names(self, classes: list | None) -> list[str]:
        """Names of the output layer's columns (the ``output`` coordinate when there are 2+)."""
        return ["f"]

    def head_scales(self) -> dict[int, float]:
        """Output columns whose weights have their own fixed prior scale (not the layer's)."""
        return {}

    @abstractmethod
    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        """Add the observed variable to the model in context. `target_scale`: the training
        target's sd, the unit of the standardized target (a fixed noise sd is given in the
        target's own units); kwargs: dims, shape or total_size, passed on to the distribution."""

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the likelihood's own posterior variables."""
        return {}

    # -- prediction ------------------------------------------------------------------------
    @abstractmethod
    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        """The predictive distribution per draw and input."""


@dataclass(frozen=True)
class NetworkOutputs:
    """What a family maps to a predictive distribution: the network's outputs on the model's
    scale, (draws, inputs[, outputs]); the posterior's other variables (sigma, nu); the
    target's standardization; a labelled target's classes."""

    values: np.ndarray
    posterior: xr.Dataset
    y_mean: float = 0.0
    y_scale: float = 1.0
    classes: list | None = None


class PredictiveDraws(ABC):
    """The conditional distribution of the target for every (draw, input), original units."""

    #: The network's outputs per draw, in the units a user reads them in; dims after the
    #: (flattened) draw axis.
    network: np.ndarray
    network_dims: tuple[str, ...] = ("obs",)
    network_coords: Mapping[str, list] = MappingProxyType({})

    @abstractmethod
    def log_density(self, y: np.ndarray) -> np.ndarray:
        """log p(y_n | theta_s, x_n), shape (draws, inputs)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One replicated target per (draw, input), in the target's units (class codes for
        labelled families)."""

    @abstractmethod
    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> Any:
        """Prediction (or ClassPrediction) of every input."""

    @abstractmethod
    def location(self) -> np.ndarray:
        """The quantity diagnose judges in function space: (draws, inputs[, classes])."""

    def expected(self) -> np.ndarray:
        """E[y | draw, input] in the target's units (class probabilities for classifiers):
        what the pictures of f show beside the data."""
        return self.location()

    def noise(self) -> dict[str, np.ndarray]:
        """Noise parameters judged like sigma: name -> (draws,) or (draws, inputs)."""
        return {}

    def cdf(self, y: np.ndarray) -> np.ndarray | None:
        """P(Y_n <= y_n) under the predictive mixture (the PIT), continuous targets only."""
        return None

    def interval_probability(
        self, lower: np.ndarray, upper: np.ndarray, level: float
    ) -> np.ndarray:
        """P(lower_n <= Y_n <= upper_n) under the predictive, per row, for the central interval
        of `level` with these ends: the level itself where the ends are exact quantiles of a
        continuous target; more for whole counts (families of counts override this)."""
        return np.full(np.shape(lower), level)

    @abstractmethod
    def scores(self, y: np.ndarray) -> dict[str, float]:
        """The family's metrics on targets y (lpd always; RMSE, coverage, ...)."""


def lpd(log_density: np.ndarray) -> np.ndarray:
    """log (1/S) sum_s p(y_n | theta_s) for each n, from (draws, inputs) log densities."""
    from scipy.special import logsumexp

    return logsumexp(log_density, axis=0) - np.log(log_density.shape[0])


def regression_scores(
    draws: PredictiveDraws, prediction: Prediction, y: np.ndarray
) -> dict[str, float]:
    """RMSE of the predictive mean, mean LPD, and coverage of the central 90% interval."""
    tail = (1 - INTERVAL) / 2
    lower, upper = prediction.quantiles[tail], prediction.quantiles[1 - tail]
    return {
        "rmse": float(np.sqrt(np.mean((prediction.mean - y) ** 2))),
        "lpd": float(lpd(draws.log_density(y)).mean()),
        "coverage_90": float(np.mean((y >= lower) & (y <= upper))),
    }


def interval_levels(levels: tuple[float, ...]) -> tuple[float, ...]:
    """The requested levels plus the 90% interval's, in order, without repeats."""
    tail = (1 - INTERVAL) / 2
    return tuple(sorted({*levels, tail, 1 - tail}))


def bad_row(message: str, column: str, source: str, values: np.ndarray, bad: np.ndarray) -> None:
    """Raise the one-line error for the first row where `bad` holds."""
    if bad.any():
        row = int(np.argmax(bad))
        raise PmbnnError(
            f"target {column!r} in {source} has {plain(values[row])!r} at data row {row + 1}: "
            f"{message}"
        )


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so a message shows -1.0, not
    np.float64(-1.0)."""
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["ClassPrediction", "Family", "Prediction", "PredictiveDraws"]
