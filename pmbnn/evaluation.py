"""How well a fitted BNN's predictive distribution fits some rows: typed scores and metrics.

The same scores describe a run's training rows, its held-out rows, and any table a user
scores later (``pmbnn evaluate``, the scikit-learn estimator's ``evaluate``), so that all of
them can be compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pmbnn.errors import PmbnnError
from pmbnn.fitted import FittedBnn


@dataclass(frozen=True)
class Scores:
    """Scores of the predictive distribution on n rows, in the target's original units; each
    family reports those that apply to it (the others are None).

    Attributes
    ----------
    n : int
        Rows scored.
    lpd : float
        Mean log predictive density per row (higher is better; the UCI papers' "test LL").
    rmse : float or None
        Root mean squared error of the predictive mean (continuous and count targets).
    coverage_90 : float or None
        Fraction of rows whose target lies in the central 90% predictive interval (likewise;
        for counts the interval's bounds are counts, so it covers at least 90% by design).
    deviance : float or None
        Mean Poisson deviance of the predictive mean (poisson).
    accuracy, log_loss, brier, ece : float or None
        Classifiers: accuracy of the most probable label, -lpd, the Brier score (scikit-learn's
        convention), the expected calibration error (10 equal-width confidence bins).
    """

    n: int
    lpd: float
    rmse: float | None = None
    coverage_90: float | None = None
    deviance: float | None = None
    accuracy: float | None = None
    log_loss: float | None = None
    brier: float | None = None
    ece: float | None = None

    def to_dict(self) -> dict[str, float]:
        """The scores that apply (n left out), in the order of the fields."""
        return {
            name: value for name, value in asdict(self).items() if name != "n" and value is not None
        }


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
                flat |= {f"{prefix}_{key}": value for key, value in scores.to_dict().items()}
        return flat


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
        One target per row of x, in original units (for a classifier the class codes
        0..K-1, positions in ``fitted.classes``).

    Returns
    -------
    Scores
        The family's metrics: mean log predictive density always; RMSE and 90% interval
        coverage for continuous and count targets; accuracy, log loss, Brier score and ECE
        for classifiers.

    Raises
    ------
    PmbnnError
        When the inputs or targets do not fit the run, or a score is not finite (never
        reported).
    """
    inputs = fitted.input_matrix(x)  # read once: a stream of record batches reads only once
    y = _checked_targets(fitted, y, len(inputs))  # named before any draw is computed
    scores = Scores(n=len(y), **fitted.distribution(inputs).scores(y))
    values = scores.to_dict()
    broken = [key for key, value in values.items() if not np.isfinite(value)]
    if broken:
        raise PmbnnError(
            f"the {broken[0]} is not finite: inference diverged on this data; check its scale, "
            "or lower [inference].learning_rate (ADVI); nothing was written"
        )
    return scores


def _checked_targets(fitted: FittedBnn, y: object, rows: int) -> np.ndarray:
    """y as floats, one finite value per row of x (a class code 0..K-1 for a classifier), or a
    PmbnnError naming what is wrong: numpy would broadcast a single value, and a code of -1
    would silently index the last class."""
    values = np.asarray(y)
    if values.dtype == bool and fitted.classes is not None:  # two classes' codes as False, True
        values = values.astype(float)
    if values.ndim != 1 or len(values) != rows:
        raise PmbnnError(f"y has shape {values.shape}; x has {rows} rows: give one target per row")
    if not np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        what = "class codes 0..K-1" if fitted.classes is not None else "numbers"
        raise PmbnnError(f"y holds {values.dtype} values; the run needs {what}")
    values = values.astype(float)
    if not np.isfinite(values).all():
        row = int(np.argmax(~np.isfinite(values)))
        raise PmbnnError(f"y has a missing or infinite value in row {row}; fill it or drop it")
    if fitted.classes is not None:
        k = len(fitted.classes)
        bad = (values != np.round(values)) | (values < 0) | (values >= k)
        if bad.any():
            row = int(np.argmax(bad))
            raise PmbnnError(
                f"y has {float(values[row])!r} in row {row}; a classifier's targets are class "
                f"codes 0..{k - 1}, the position of each label in {fitted.classes}"
            )
    return values
