"""What prediction returns: per-input summaries of the posterior predictive, one class for
continuous and count targets, one for class labels. Data only; the families compute them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
import xarray as xr

from pmbnn.errors import PmbnnError

SUMMARY_COLUMNS = ("mean", "sd_total", "sd_epistemic", "sd_aleatoric")  # then q05, q95, ...
CLASS_COLUMNS = ("label", "entropy_total", "entropy_aleatoric", "mutual_information")


def quantile_column(level: float) -> str:
    """q05, q95 for whole percents; q2.5, q97.5 otherwise (never two levels on one name)."""
    percent = level * 100
    whole = round(percent)
    return f"q{whole:02d}" if abs(percent - whole) < 1e-9 else f"q{percent:g}"


def check_levels(levels: tuple[float, ...]) -> None:
    """Quantile levels are distinct probabilities strictly inside (0, 1): 0 and 1 are the
    support's ends (infinite for most families), 95 is a percent meant as 0.95."""
    for level in levels:
        if not 0 < level < 1:
            raise PmbnnError(
                f"quantile level {level!r} is not a probability strictly between 0 and 1; "
                "write levels as fractions, e.g. (0.05, 0.95)"
            )
    names = [quantile_column(level) for level in levels]
    if len(set(names)) < len(names):
        raise PmbnnError(f"quantile levels {levels} repeat a level; give each once")


@dataclass(frozen=True)
class Prediction:
    """Posterior predictive summaries for each input, in the target's original units.

    Attributes
    ----------
    mean : ndarray
        Predictive mean.
    sd_epistemic, sd_aleatoric, sd_total : ndarray
        The spread of the conditional mean over draws (what more data would shrink), the
        noise (sqrt of the mean conditional variance), and both together (law of total
        variance). ``inf`` where the predictive variance does not exist (Student-t noise with
        nu <= 2 in some draw).
    quantiles : dict of float to ndarray
        Exact quantiles of the predictive mixture at the requested levels (for counts: the
        smallest count whose predictive CDF reaches the level).
    function_draws : DataArray
        The network's output per draw, dims (chain, draw, obs[, output]).
    """

    mean: np.ndarray
    sd_epistemic: np.ndarray
    sd_aleatoric: np.ndarray
    sd_total: np.ndarray
    quantiles: dict[float, np.ndarray]
    function_draws: xr.DataArray

    def to_frame(self) -> pd.DataFrame:
        summaries = (self.mean, self.sd_total, self.sd_epistemic, self.sd_aleatoric)
        columns = dict(zip(SUMMARY_COLUMNS, summaries, strict=True))
        columns |= {quantile_column(level): q for level, q in self.quantiles.items()}
        return pd.DataFrame(columns)

    def finite_rows(self) -> np.ndarray:
        """Rows whose mean and interval bounds are finite (an sd may be inf by definition)."""
        return np.isfinite(np.column_stack([self.mean, *self.quantiles.values()])).all(axis=1)


@dataclass(frozen=True)
class ClassPrediction:
    """Posterior predictive of a class label for each input.

    Attributes
    ----------
    probabilities : ndarray
        (inputs, classes): the posterior mean of each class's probability.
    classes : list
        The labels, in the order of the columns of `probabilities` (as stored with the run).
    entropy_total, entropy_aleatoric, mutual_information : ndarray
        The uncertainty split by entropy (nats): the predictive entropy H[E p], the expected
        entropy E H[p] (what the data cannot resolve), and their difference, the mutual
        information between the label and the weights (what more data would shrink).
    function_draws : DataArray
        The network's output (logits) per draw, dims (chain, draw, obs[, output]).
    """

    probabilities: np.ndarray
    classes: list
    entropy_total: np.ndarray
    entropy_aleatoric: np.ndarray
    mutual_information: np.ndarray
    function_draws: xr.DataArray

    @property
    def label(self) -> np.ndarray:
        """The most probable class of each input (the first on a tie)."""
        return np.asarray(self.classes, dtype=object)[np.argmax(self.probabilities, axis=1)]

    def to_frame(self) -> pd.DataFrame:
        columns = {f"p_{c}": self.probabilities[:, k] for k, c in enumerate(self.classes)}
        columns |= {
            "label": self.label,
            "entropy_total": self.entropy_total,
            "entropy_aleatoric": self.entropy_aleatoric,
            "mutual_information": self.mutual_information,
        }
        return pd.DataFrame(columns)

    def finite_rows(self) -> np.ndarray:
        return np.isfinite(self.probabilities).all(axis=1)


def first_rows[P: Prediction | ClassPrediction](prediction: P, n: int) -> P:
    """The summaries of the first n inputs only (function_draws dropped)."""
    return _per_input(prediction, lambda name, k: _field(prediction, name, k)[:n], None)


def joined[P: Prediction | ClassPrediction](
    parts: list[P], function_draws: xr.DataArray | None
) -> P:
    """The summaries of consecutive blocks of inputs as those of all of them, in order."""
    return _per_input(
        parts[0],
        lambda name, k: np.concatenate([_field(part, name, k) for part in parts]),
        function_draws,
    )


def _field(prediction: Prediction | ClassPrediction, name: str, key: float | None) -> np.ndarray:
    value = getattr(prediction, name)
    return value if key is None else value[key]


def _per_input[P: Prediction | ClassPrediction](
    prediction: P,
    rows: Callable[[str, float | None], np.ndarray],
    function_draws: xr.DataArray | None,
) -> P:
    """A copy whose per-input arrays (one per quantile level too) are rows(name, level)."""
    values: dict = {}
    for field in fields(prediction):
        value = getattr(prediction, field.name)
        if field.name == "function_draws":
            values[field.name] = function_draws
        elif isinstance(value, np.ndarray):
            values[field.name] = rows(field.name, None)
        elif isinstance(value, dict):  # quantiles: level -> array
            values[field.name] = {level: rows(field.name, level) for level in value}
        else:  # the class labels
            values[field.name] = value
    return replace(prediction, **values)


def entropy_split(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total, aleatoric, epistemic) entropy of class probabilities (draws, inputs, classes).

    total = H[mean_s p_s], aleatoric = mean_s H[p_s], epistemic = total - aleatoric (the
    mutual information; >= 0 by Jensen's inequality, clipped at 0 against rounding).
    """
    mean = probabilities.mean(axis=0)
    total = _entropy(mean)
    aleatoric = _entropy(probabilities).mean(axis=0)
    return total, aleatoric, np.maximum(total - aleatoric, 0.0)


def _entropy(p: np.ndarray) -> np.ndarray:
    """-sum_k p_k log p_k over the last axis, with 0 log 0 = 0."""
    safe = np.where(p > 0, p, 1.0)
    return -np.sum(p * np.log(safe), axis=-1)
