"""How well a fitted BNN's predictive distribution fits some rows: typed scores and metrics.

The same scores describe a run's training rows, its held-out rows, and any table a user
scores later (``pmbnn evaluate``, the scikit-learn estimator's ``evaluate``), so that all of
them can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pmbnn.errors import PmbnnError
from pmbnn.fitted import FittedBnn

INTERVAL = 0.9  # the central predictive interval whose coverage is reported


@dataclass(frozen=True)
class Scores:
    """Scores of the predictive distribution on n rows, in the target's original units.

    Attributes
    ----------
    n : int
        Rows scored.
    rmse : float
        Root mean squared error of the predictive mean.
    lpd : float
        Mean log predictive density per row (higher is better; the UCI papers' "test LL").
    coverage_90 : float
        Fraction of rows whose target lies in the central 90% predictive interval.
    """

    n: int
    rmse: float
    lpd: float
    coverage_90: float


@dataclass(frozen=True)
class Metrics:
    """What a fit reports: scores on its training rows and, if it held some out, on those."""

    train: Scores
    test: Scores | None = None

    def to_dict(self) -> dict:
        """The flat layout of metrics.json (test keys only when there was a test split)."""
        flat: dict = {"n_train": self.train.n, "n_test": self.test.n if self.test else 0}
        for prefix, scores in (("train", self.train), ("test", self.test)):
            if scores is not None:
                flat |= {f"{prefix}_{key}": getattr(scores, key) for key in _SCORE_KEYS}
        return flat


_SCORE_KEYS = ("rmse", "lpd", "coverage_90")


def evaluate(fitted: FittedBnn, x: pd.DataFrame | np.ndarray, y: np.ndarray) -> Scores:
    """Score a fitted BNN's predictive distribution on rows it may never have seen.

    Parameters
    ----------
    fitted : FittedBnn
        A fit, or a run loaded with `load_run`.
    x : DataFrame or ndarray
        The inputs: a DataFrame's columns are found by name; an array's are the fitted
        features in order.
    y : ndarray
        The targets, in original units.

    Returns
    -------
    Scores
        RMSE, mean log predictive density and 90% interval coverage on these rows.

    Raises
    ------
    PmbnnError
        When the inputs do not fit the run, or a score is not finite (never reported).
    """
    y = np.asarray(y, dtype=float)
    tail = (1 - INTERVAL) / 2
    prediction = fitted.predict(x, levels=(tail, 1 - tail))
    lower, upper = prediction.quantiles[tail], prediction.quantiles[1 - tail]
    scores = Scores(
        n=len(y),
        rmse=float(np.sqrt(np.mean((prediction.mean - y) ** 2))),
        lpd=float(fitted.log_predictive_density(x, y).mean()),
        coverage_90=float(np.mean((y >= lower) & (y <= upper))),
    )
    broken = [key for key in _SCORE_KEYS if not np.isfinite(getattr(scores, key))]
    if broken:
        raise PmbnnError(
            f"the {broken[0]} is not finite: inference diverged on this data; check its scale, "
            "or lower [inference].learning_rate (ADVI); nothing was written"
        )
    return scores
