"""The UCI regression benchmark in its standard layout, and the published figures to compare.

Layout (Hernandez-Lobato & Adams 2015; Gal & Ghahramani 2016): ``data.txt`` (whitespace
separated), ``index_features.txt``, ``index_target.txt``, ``index_train_K.txt`` and
``index_test_K.txt`` (0-based rows of split K), optionally ``n_splits.txt``.
"""

from __future__ import annotations

import tomllib
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np

from pmbnn.data import Dataset
from pmbnn.errors import PmbnnError

REQUIRED = ("data.txt", "index_features.txt", "index_target.txt")


def load_uci(uci_dir: str | Path, name: str) -> Dataset:
    folder = Path(uci_dir) / name
    if not folder.is_dir():
        known = (
            sorted(p.name for p in Path(uci_dir).iterdir() if p.is_dir())
            if Path(uci_dir).is_dir()
            else []
        )
        raise PmbnnError(
            f"no dataset {name!r} in {uci_dir}"
            + (f"; there are: {', '.join(known)}" if known else "; give the folder with --uci-dir")
        )
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if missing:
        raise PmbnnError(f"{folder} is not in the UCI layout: missing {', '.join(missing)}")
    raw = _numbers(folder / "data.txt", float, ndmin=2)
    features = _numbers(folder / "index_features.txt", int, ndmin=1)
    targets = _numbers(folder / "index_target.txt", int, ndmin=1)
    if targets.size != 1:
        raise PmbnnError(f"{folder}/index_target.txt must hold one column number")
    target = int(targets[0])
    columns = raw.shape[1]
    if not (0 <= target < columns and ((features >= 0) & (features < columns)).all()):
        raise PmbnnError(
            f"{folder}: index_features.txt or index_target.txt names a column beyond "
            f"data.txt's {columns}"
        )
    if not np.isfinite(raw[:, [*features, target]]).all():
        raise PmbnnError(f"{folder}/data.txt holds missing or infinite values")
    return Dataset(
        x=raw[:, features],
        y=raw[:, target],
        feature_names=[f"column_{j}" for j in features],
        target=f"column_{target}",
        source=f"uci:{name}",
    )


def split_rows(uci_dir: str | Path, name: str, split: int) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(uci_dir) / name
    paths = [folder / f"index_{part}_{split}.txt" for part in ("train", "test")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PmbnnError(f"split {split} of {name} is missing ({', '.join(missing)}) in {folder}")
    train, test = (_numbers(p, int, ndmin=1) for p in paths)
    rows = _numbers(folder / "data.txt", float, ndmin=2).shape[0]
    for part, indices in (("train", train), ("test", test)):
        outside = indices[(indices < 0) | (indices >= rows)]
        if outside.size or not indices.size:
            what = f"row {outside[0]}" if outside.size else "no rows"
            raise PmbnnError(
                f"index_{part}_{split}.txt of {name} names {what}; data.txt has rows "
                f"0-{rows - 1}: fix the split file"
            )
    if np.intersect1d(train, test).size:
        raise PmbnnError(
            f"split {split} of {name} puts row {np.intersect1d(train, test)[0]} in both "
            "training and test: fix the split files"
        )
    return train, test


def _numbers(path: Path, dtype: type[float] | type[int], ndmin: Literal[1, 2]) -> np.ndarray:
    """A whitespace-separated file of numbers, or PmbnnError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, rather than fails, on an empty file
            return np.loadtxt(path, dtype=dtype, ndmin=ndmin)
    except (ValueError, TypeError, UserWarning) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PmbnnError(f"cannot read {path} as numbers ({reason}); fix the file") from None


def available_splits(uci_dir: str | Path, name: str) -> int:
    folder = Path(uci_dir) / name
    return len(list(folder.glob("index_train_*.txt")))


def published() -> dict:
    """Published per-dataset figures, keyed by method, each with its citation and source."""
    text = files("pmbnn.published").joinpath("uci.toml").read_text()
    return tomllib.loads(text)
