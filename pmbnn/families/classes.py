"""Bernoulli and categorical: class labels as the target. The network's outputs are logits;
the labels (integers or strings) and their order are stored with the run."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import special

from pmbnn.errors import PmbnnError
from pmbnn.families.base import Family, NetworkOutputs, PredictiveDraws, lpd
from pmbnn.families.summaries import ClassPrediction, entropy_split
from pmbnn.trace import OBSERVED

CALIBRATION_BINS = 10  # equal-width bins of the top class's probability (Guo et al., 2017)


class Categorical(Family):
    """K classes, P(class k) = softmax(f(x))_k over the network's K outputs."""

    name = "categorical"
    continuous = False
    labelled = True
    min_classes: ClassVar[int] = 2
    max_classes: ClassVar[int | None] = None

    def encode_labels(
        self, values: pd.Series, column: str, source: str, classes: list | None
    ) -> tuple[np.ndarray, list]:
        """Class codes 0..K-1 and the labels in code order: the given `classes` (held-out
        rows), else the sorted distinct labels of `values`."""
        missing = values.isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            raise PmbnnError(
                f"target {column!r} in {source} has no label at data row {row + 1}; fill it, "
                "or add --dropna to drop that row"
            )
        labels = _labels(values, column, source, self.name)
        found = sorted(set(labels)) if classes is None else list(classes)
        if classes is None and len(found) < self.min_classes:
            raise PmbnnError(
                f"target {column!r} in {source} has {len(found)} distinct label(s) "
                f"({', '.join(map(repr, found))}); family = {self.name!r} needs at least "
                f"{self.min_classes} to learn from"
            )
        if classes is None and self.max_classes is not None and len(found) > self.max_classes:
            raise PmbnnError(
                f"target {column!r} in {source} has {len(found)} distinct labels "
                f"({', '.join(map(repr, found[:5]))}{', ...' if len(found) > 5 else ''}); "
                "family = 'bernoulli' takes two (0/1, or two labels): choose family = "
                "'categorical' for more"
            )
        index = {label: code for code, label in enumerate(found)}
        unknown = [row for row, label in enumerate(labels) if label not in index]
        if unknown:
            raise PmbnnError(
                f"target {column!r} in {source} has the label {labels[unknown[0]]!r} at data row "
                f"{unknown[0] + 1}, which the training rows do not have (labels: "
                f"{', '.join(map(repr, found))}); remove those rows"
            )
        return np.array([index[label] for label in labels], dtype=float), found

    def model_values(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y).astype(np.int64)

    def n_outputs(self, classes: list | None) -> int:
        assert classes is not None
        return len(classes)

    def output_names(self, classes: list | None) -> list[str]:
        assert classes is not None
        return [str(label) for label in classes]

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        pm.Categorical(OBSERVED, logit_p=output, observed=observed, **kwargs)

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        assert net.classes is not None
        probabilities = special.softmax(net.values, axis=-1)
        dims = {"output": self.output_names(net.classes)}
        return ClassDraws(probabilities, net.classes, net.values, ("obs", "output"), dims)


class Bernoulli(Categorical):
    """Two classes, P(second label) = sigmoid(f(x)) from one output."""

    name = "bernoulli"
    max_classes = 2

    def n_outputs(self, classes: list | None) -> int:
        return 1

    def output_names(self, classes: list | None) -> list[str]:
        return ["logit"]

    def likelihood(self, output: Any, observed: Any, target_scale: Any, **kwargs: Any) -> None:
        pm.Bernoulli(OBSERVED, logit_p=output, observed=observed, **kwargs)

    def draws(self, net: NetworkOutputs) -> PredictiveDraws:
        assert net.classes is not None
        p = special.expit(net.values)
        return ClassDraws(np.stack([1 - p, p], axis=-1), net.classes, net.values, ("obs",), {})


class ClassDraws(PredictiveDraws):
    """Class probabilities per (draw, input, class); targets are class codes."""

    def __init__(
        self,
        probabilities: np.ndarray,
        classes: list,
        logits: np.ndarray,
        dims: tuple[str, ...],
        coords: dict[str, list],
    ):
        self.probabilities, self.classes = probabilities, classes
        self.network, self.network_dims, self.network_coords = logits, dims, coords

    def log_density(self, y: np.ndarray) -> np.ndarray:
        """log P(class y_n | theta_s) from the logits (log-softmax), not log(probability): a
        probability rounds to 0 or 1 past a logit of about 37, whose log is -inf, and one
        -inf draw turns the LOO of every point into NaN."""
        codes = np.asarray(y, dtype=np.int64)
        logits = self.network
        if logits.ndim == 2:  # Bernoulli: one logit, P(second class); the first's is 0
            logits = np.stack([np.zeros_like(logits), logits], axis=-1)
        log_p = special.log_softmax(logits, axis=-1)
        return np.take_along_axis(log_p, codes[None, :, None], axis=-1)[..., 0]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(self.probabilities.shape[:-1])
        below = np.cumsum(self.probabilities, axis=-1)[..., :-1] < u[..., None]
        return below.sum(axis=-1).astype(float)

    def summarize(
        self, levels: tuple[float, ...] = (), function_draws: xr.DataArray | None = None
    ) -> ClassPrediction:
        total, aleatoric, epistemic = entropy_split(self.probabilities)
        return ClassPrediction(
            probabilities=self.probabilities.mean(axis=0),
            classes=list(self.classes),
            entropy_total=total,
            entropy_aleatoric=aleatoric,
            mutual_information=epistemic,
            function_draws=function_draws,  # type: ignore[arg-type]
        )

    def location(self) -> np.ndarray:
        """Probabilities, not logits: softmax ignores a shift of all logits, so chains can
        disagree on logits while agreeing on every prediction (as with hidden units)."""
        p = self.probabilities
        return p[..., 1] if p.shape[-1] == 2 else p

    def scores(self, y: np.ndarray) -> dict[str, float]:
        codes = np.asarray(y, dtype=np.int64)
        mean = self.probabilities.mean(axis=0)
        log_density = lpd(self.log_density(y))
        onehot = np.eye(mean.shape[1])[codes]
        # scikit-learn's brier_score_loss: (p - y)^2 for two classes, the sum over classes
        # of the squared differences for more.
        brier = (mean[:, 1] - codes) ** 2 if mean.shape[1] == 2 else ((mean - onehot) ** 2).sum(1)
        return {
            "lpd": float(log_density.mean()),
            "accuracy": float(np.mean(np.argmax(mean, axis=1) == codes)),
            "log_loss": float(-log_density.mean()),
            "brier": float(brier.mean()),
            "ece": expected_calibration_error(mean, codes),
        }


def reliability_bins(
    probabilities: np.ndarray, codes: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[dict]:
    """Per equal-width bin of the top class's probability: its mean probability (confidence),
    the accuracy of the top class there, and the row count (empty bins left out)."""
    confidence = probabilities.max(axis=1)
    correct = np.argmax(probabilities, axis=1) == codes
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    return [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "confidence": float(confidence[which == b].mean()),
            "accuracy": float(correct[which == b].mean()),
            "n": int((which == b).sum()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def expected_calibration_error(probabilities: np.ndarray, codes: np.ndarray) -> float:
    """sum over bins of (rows in bin / rows) x |accuracy - confidence| (Guo et al., 2017; 10
    equal-width bins of the top class's probability, (0, 0.1], ..., (0.9, 1])."""
    bins = reliability_bins(probabilities, codes)
    n = len(codes)
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins))


def _labels(values: pd.Series, column: str, source: str, family: str) -> list:
    """The labels as Python values: integers (whole numbers, bools) or strings."""
    if pd.api.types.is_bool_dtype(values):
        return [bool(v) for v in values]
    if pd.api.types.is_integer_dtype(values):  # exact: floats merge labels past 2**53
        return [int(v) for v in values]
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float)
        fractional = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if fractional.any():
            row = int(np.argmax(fractional))
            raise PmbnnError(
                f"target {column!r} in {source} has {float(numbers[row])!r} at data row "
                f"{row + 1}; "
                f"family = {family!r} takes class labels (integers or text), not real "
                "numbers: choose family = 'gaussian' for a real-valued target"
            )
        return [int(v) for v in numbers]
    return [str(v) for v in values]
