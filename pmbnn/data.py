"""Tables in, validated arrays out: reading, column checks, train/test split, scaling.

Everything is checked here, once, at the edge; later stages trust the arrays.
"""

from __future__ import annotations

import hashlib
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.examples import EXAMPLES
from pmbnn.families import Family, family_of
from pmbnn.spec import DataSpec, LikelihoodSpec
from pmbnn.tables import read_table

MIN_TRAIN_ROWS = 2
# Largest magnitude accepted in fitted columns: squares (variances) of values up to this, times
# the row and draw counts, stay far inside float64's range (1.8e308).
MAX_ABS_VALUE = 1e100


@dataclass(frozen=True)
class Dataset:
    """Inputs and target as float arrays, with the names they came with (a labelled target
    as class codes 0..K-1, its labels in `classes`)."""

    x: np.ndarray  # (rows, features)
    y: np.ndarray  # (rows,)
    feature_names: list[str]
    target: str
    source: str
    classes: list | None = None

    def followed_by(self, held_out: Dataset) -> tuple[Dataset, np.ndarray, np.ndarray]:
        """This table's rows then held_out's as one Dataset, with (training, test) row indices."""
        rows = len(self.y)
        both = Dataset(
            np.vstack([self.x, held_out.x]),
            np.concatenate([self.y, held_out.y]),
            self.feature_names,
            self.target,
            f"{self.source} + {held_out.source}",
            self.classes,
        )
        return both, np.arange(rows), np.arange(rows, rows + len(held_out.y))

    @property
    def fingerprint(self) -> str:
        """sha256 of the values and column names: tells whether two runs saw the same data."""
        digest = hashlib.sha256()
        digest.update("\0".join([*self.feature_names, self.target]).encode())
        digest.update(np.ascontiguousarray(self.x, dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype=np.float64).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class Standardizer:
    """Affine maps to and from the scale the model is fitted on (training statistics)."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, enabled: bool, target: bool = True) -> Standardizer:
        """Training statistics; `target` False keeps y as it is (counts and class codes are
        modelled in their own units, only inputs are standardized)."""
        if not enabled:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]), 0.0, 1.0)
        x_scale = x.std(axis=0)
        # A constant column keeps scale 1 (the UCI protocol's convention) instead of dividing by 0.
        x_scale = np.where(x_scale > 0, x_scale, 1.0)
        y_mean, y_scale = (float(y.mean()), float(y.std()) or 1.0) if target else (0.0, 1.0)
        scaler = cls(x.mean(axis=0), x_scale, y_mean, y_scale)
        statistics = np.r_[scaler.x_mean, scaler.x_scale, scaler.y_mean, scaler.y_scale]
        if not np.isfinite(statistics).all():  # guarded by MAX_ABS_VALUE; never written
            raise PmbnnError("the training data's means or scales are not finite; rescale it")
        return scaler

    def x(self, x: np.ndarray) -> np.ndarray:
        return (x - self.x_mean) / self.x_scale

    def y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_mean) / self.y_scale

    def x_original(self, x_scaled: np.ndarray) -> np.ndarray:
        return x_scaled * self.x_scale + self.x_mean

    def y_original(self, y_scaled: np.ndarray) -> np.ndarray:
        return y_scaled * self.y_scale + self.y_mean

    def to_dict(self) -> dict:
        return {
            "x_mean": self.x_mean.tolist(),
            "x_scale": self.x_scale.tolist(),
            "y_mean": self.y_mean,
            "y_scale": self.y_scale,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Standardizer:
        return cls(
            np.asarray(raw["x_mean"], dtype=float),
            np.asarray(raw["x_scale"], dtype=float),
            float(raw["y_mean"]),
            float(raw["y_scale"]),
        )


def load_split(
    spec: DataSpec, seed: int, family: Family | None = None
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The spec's data with its (training, test) rows: a seeded random split of one table, or
    a table of held-out rows ([data].test_path) after the training table, its target read as
    `family` (default Gaussian) reads targets."""
    data = load_dataset(spec, seed, family)
    if spec.test_path is None:
        return data, *split_indices(len(data.y), spec.test_fraction, seed)
    if spec.path is not None and Path(spec.test_path).resolve() == Path(spec.path).resolve():
        raise PmbnnError(
            f"the held-out table {spec.test_path} is the training table; give a table of other "
            "rows with --test-data, or a --test-fraction"
        )
    if len(data.y) < MIN_TRAIN_ROWS:
        raise PmbnnError(f"{data.source} has {len(data.y)} row(s); need at least {MIN_TRAIN_ROWS}")
    held_out = spec.model_copy(
        update={
            "path": spec.test_path,
            "example": None,
            "features": data.feature_names,
            "target": data.target,
        }
    )
    return data.followed_by(load_dataset(held_out, seed, family, data.classes))


def load_dataset(
    spec: DataSpec, seed: int, family: Family | None = None, classes: list | None = None
) -> Dataset:
    """The data a spec names: a file, or a built-in example generated from the seed. A
    labelled family's target is encoded with `classes` when given (held-out rows), else with
    the table's own labels."""
    family = family or family_of(LikelihoodSpec())
    if spec.path is not None:
        frame, source = read_table(spec.path), spec.path
        target = spec.target
        if target is None:
            raise PmbnnError(f"no target column given for {spec.path}: add --target COL")
    else:
        generate, default_target = EXAMPLES[spec.example or "sine-gap"]
        frame, source = generate(seed), f"example:{spec.example or 'sine-gap'}"
        target = spec.target or default_target
    features = spec.features or [c for c in frame.columns if c != target]
    _check_feature_choice(frame, features, target, source, chosen=spec.features is not None)
    if spec.dropna:
        frame = drop_incomplete_rows(frame, features, source, target, family.labelled)
    x = numeric_columns(frame, features, source)
    check_magnitude(x, features, source)
    if family.labelled:
        if target not in frame.columns:
            numeric_columns(frame, [target], source)  # the unknown-column message
        y, classes = family.encode_labels(frame[target], str(target), source, classes)
    else:
        y = numeric_columns(frame, [target], source)[:, 0]
        check_magnitude(y[:, None], [target], source)
        family.check_target(y, str(target), source)
    return Dataset(x, y, [str(f) for f in features], str(target), source, classes)


def _check_feature_choice(
    frame: pd.DataFrame, features: list[str], target: str, source: str, chosen: bool
) -> None:
    """The inputs must not include the target (label leakage), a column twice, or an index."""
    if target in features:
        raise PmbnnError(
            f"the target {target!r} is also listed among the features of {source}; a model "
            "given its own target learns nothing: remove it from --features ([data].features)"
        )
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise PmbnnError(
            f"feature {repeated[0]!r} is listed twice in --features ([data].features); "
            "list each column once"
        )
    unnamed = [c for c in features if c in frame.columns and is_unnamed(c)]
    if unnamed:
        position = list(frame.columns).index(unnamed[0]) + 1
        fix = (
            "leave it out of --features"
            if chosen
            else "name it, or choose the inputs with --features"
        )
        raise PmbnnError(
            f"column {position} of {source} has no name (a row index written by pandas?); "
            f"a row number is not an input: {fix}"
        )


def check_magnitude(values: np.ndarray, names: list[str], source: str) -> None:
    """Values so large that their squares overflow make standardization and variances inf."""
    too_large = np.abs(values) > MAX_ABS_VALUE
    if too_large.any():
        rows, cols = np.nonzero(too_large)
        raise PmbnnError(
            f"column {names[cols[0]]!r} in {source} has the value {values[rows[0], cols[0]]:g} "
            f"at data row {rows[0] + 1}; pmbnn needs values below {MAX_ABS_VALUE:g} in size "
            "to compute scales and variances: rescale the column (e.g. divide it by a power "
            "of ten)"
        )


def drop_incomplete_rows(
    frame: pd.DataFrame, features: list[str], source: str, target: str, labelled: bool = False
) -> pd.DataFrame:
    """Rows of frame whose inputs are all finite numbers and whose target is one too (or, a
    label, present); says how many went."""
    columns = features if labelled else [*features, target]
    present = [c for c in columns if c in frame.columns]
    coerced = frame[present].apply(pd.to_numeric, errors="coerce")
    # A text column (no number in it at all) is left for numeric_columns to name: dropping
    # every row for it would only hide the mistake. A column of numbers with markers such as
    # "?" (the UCI files' missing value) loses those rows and becomes numbers.
    text = [c for c in present if coerced[c].isna().all() and frame[c].notna().any()]
    judged = [c for c in present if c not in text]
    keep = np.isfinite(coerced[judged].to_numpy(dtype=float)).all(axis=1)
    if labelled and target in frame.columns:
        keep &= frame[target].notna().to_numpy()
    dropped = int((~keep).sum())
    if dropped == len(frame) and dropped:
        raise PmbnnError(
            f"every row of {source} has a missing or non-numeric value in "
            f"{', '.join(map(repr, judged))}; nothing is left to use (--dropna)"
        )
    if dropped:
        warnings.warn(
            f"dropped {dropped} of {len(frame)} row(s) of {source} with missing or infinite "
            "values (--dropna)",
            DataWarning,
            stacklevel=2,
        )
    kept = frame[keep].reset_index(drop=True)
    for column in judged:
        if not pd.api.types.is_numeric_dtype(kept[column]):  # text that held numbers
            kept[column] = coerced[column][keep].to_numpy(dtype=float)
    return kept


def constant_features(x: np.ndarray, names: list[str]) -> list[str]:
    return [name for name, column in zip(names, x.T, strict=True) if np.ptp(column) == 0]


def numeric_columns(
    frame: pd.DataFrame, columns: list[str], source: str, purpose: str = "fit"
) -> np.ndarray:
    """The named columns as a float matrix; unknown, non-numeric or non-finite columns fail.

    purpose "fit" or "predict": the messages suggest only what the user can do there.
    """
    fitting = purpose == "fit"
    if not columns:
        raise PmbnnError(f"{source} has no feature columns besides the target")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        needed = "" if fitting else ", which the run was fitted on"
        raise PmbnnError(
            f"unknown column {', '.join(map(repr, missing))} in {source}{needed}; "
            f"columns are: {', '.join(map(str, frame.columns))}"
        )
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()] if c in columns})
    if repeated:
        raise PmbnnError(f"column {repeated[0]!r} appears more than once in {source}; rename "
                         "or drop the copies")  # fmt: skip
    table = frame[columns].copy()
    for column in columns:
        values = frame[column]
        if pd.api.types.is_complex_dtype(values):
            raise PmbnnError(f"column {column!r} in {source} holds complex numbers; give its "
                             "real and imaginary parts as two columns")  # fmt: skip
        if pd.api.types.is_bool_dtype(values):
            fix = "encode them as 0 and 1" if fitting else "the run needs them as numbers"
            raise PmbnnError(f"column {column!r} in {source} holds True/False values; {fix}")
        if values.dtype == object and values.dropna().map(_is_number).all():
            table[column] = values.astype(float)  # numbers stored as objects: Decimal, int
            continue
        if not pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            not_numbers = numbers.isna().to_numpy() & values.notna().to_numpy()
            row = int(np.argmax(not_numbers)) if not_numbers.any() else 0
            fix = (
                "encode it as numbers, or leave it out with --features"
                if fitting
                else "the run needs it as numbers"
            )
            raise PmbnnError(
                f"column {column!r} in {source} is not numeric (data row {row + 1}: "
                f"{values.iloc[row]!r}); {fix}"
            )
    values = table.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        fix = (
            "fill them, or add --dropna to drop those rows"
            if fitting
            else "fill them, or remove those rows"
        )
        raise PmbnnError(
            f"{int(bad.sum())} missing or infinite value(s) in {source}, first in column "
            f"{columns[cols[0]]!r} at data row {rows[0] + 1}; {fix}"
        )
    return values


def is_unnamed(column: str) -> bool:
    """pandas' name for a column whose header is empty (typically a saved row index)."""
    return str(column).startswith("Unnamed: ")


def read_labelled(
    path: str | Path,
    feature_names: list[str],
    target: str,
    family: Family | None = None,
    classes: list | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A table's inputs (found by name) and target, as a fitted run needs them to be scored
    (a labelled target as codes of the run's `classes`)."""
    frame = read_table(path)
    x = numeric_columns(frame, feature_names, str(path), "predict")
    if family is not None and family.labelled:
        if target not in frame.columns:
            numeric_columns(frame, [target], str(path), "predict")  # the unknown-column message
        return x, family.encode_labels(frame[target], target, str(path), classes)[0]
    y = numeric_columns(frame, [target], str(path), "predict")[:, 0]
    if family is not None:
        family.check_target(y, target, str(path))
    return x, y


def split_indices(rows: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split; test_fraction 0 puts every row in training."""
    n_test = round(rows * test_fraction) if test_fraction > 0 else 0
    if test_fraction > 0:
        n_test = max(n_test, 1)
    if rows - n_test < MIN_TRAIN_ROWS:
        raise PmbnnError(
            f"only {rows} row(s) of data leave {rows - n_test} for training; "
            f"need at least {MIN_TRAIN_ROWS} (lower [data].test_fraction or add rows)"
        )
    order = np.random.default_rng([seed, 7]).permutation(rows)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool | complex)
