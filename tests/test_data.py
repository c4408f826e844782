"""Tables in: every format gives the same arrays; bad tables give one clear line and exit 2."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fastparquet import write as write_parquet

from pmbnn.data import load_dataset, split_indices
from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.pipeline import fit
from pmbnn.spec import DataSpec, Spec
from tests.helpers import assert_usage_error, run_cli

ROWS = 30


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(ROWS, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": x @ [1.0, -1.0]})


def write(frame: pd.DataFrame, path) -> str:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".parquet":
        write_parquet(str(path), frame)
    elif suffix == ".npz":
        np.savez(path, **{name: frame[name].to_numpy() for name in frame.columns})
    return str(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".npz"])
def test_every_format_reads_the_same_values(frame, tmp_path, suffix):
    data = load_dataset(DataSpec(path=write(frame, tmp_path / f"t{suffix}"), target="y"), 0)
    assert data.feature_names == ["a", "b"]
    np.testing.assert_array_equal(data.x, frame[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(data.y, frame["y"].to_numpy())


def test_npz_matrix_becomes_numbered_columns(frame, tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, X=frame[["a", "b"]].to_numpy(), y=frame["y"].to_numpy())
    data = load_dataset(DataSpec(path=str(path), target="y", features=["X_1"]), 0)
    assert data.feature_names == ["X_1"]
    np.testing.assert_array_equal(data.x[:, 0], frame["b"].to_numpy())


def test_dropna_drops_and_counts(frame, tmp_path):
    frame.loc[[2, 5], "a"] = np.nan
    frame.loc[7, "y"] = np.inf
    path = write(frame, tmp_path / "t.csv")
    with pytest.raises(PmbnnError, match=r"2 missing or infinite value\(s\).*row 3.*--dropna"):
        load_dataset(DataSpec(path=path, target="y"), 0)
    with pytest.warns(DataWarning, match=r"dropped 3 of 30 row"):
        data = load_dataset(DataSpec(path=path, target="y", dropna=True), 0)
    assert len(data.y) == ROWS - 3 and np.isfinite(data.x).all() and np.isfinite(data.y).all()


def test_dropna_drops_missing_markers_and_still_names_a_text_column(frame, tmp_path):
    """The UCI files' "?" for a missing number: --dropna drops those rows and reads the rest
    as numbers (it once dropped them, then refused the column naming a valid number). A
    column of text is named as such, not dropped row by row into nothing."""
    frame["a"] = frame["a"].astype(object)
    frame.loc[[4, 9], "a"] = "?"
    frame["city"] = "Oslo"
    path = write(frame, tmp_path / "t.csv")
    with pytest.warns(DataWarning, match=r"dropped 2 of 30 row"):
        data = load_dataset(DataSpec(path=path, target="y", features=["a"], dropna=True), 0)
    assert len(data.y) == ROWS - 2 and np.isfinite(data.x).all()
    with pytest.raises(PmbnnError, match=r"column 'city' .* is not numeric .*'Oslo'"):
        load_dataset(DataSpec(path=path, target="y", features=["city"], dropna=True), 0)


def test_dropna_ignores_unused_columns(frame, tmp_path):
    frame["notes"] = np.nan
    path = write(frame, tmp_path / "t.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # nothing to drop: no warning either
        data = load_dataset(DataSpec(path=path, target="y", features=["a"], dropna=True), 0)
    assert len(data.y) == ROWS


def test_constant_feature_is_kept_scaled_safely_and_warned(frame, tmp_path):
    frame["c"] = 3.0
    spec = Spec().with_overrides(
        network={"hidden": [2]},
        data={"path": write(frame, tmp_path / "t.csv"), "target": "y"},
        inference={"method": "advi", "iterations": 200, "draws": 20},
    )
    with pytest.warns(DataWarning, match="'c' are constant on the training rows"):
        fitted, metrics = fit(spec)
    assert fitted.feature_names == ["a", "b", "c"]
    assert fitted.scaler.x_scale[2] == 1.0 and np.isfinite(metrics.train.rmse)
    # Scaling statistics come from the training rows only, and are stored with the run.
    train, test = split_indices(ROWS, spec.data.test_fraction, spec.inference.seed)
    assert len(test) == 3
    np.testing.assert_allclose(fitted.scaler.x_mean[:2], frame.loc[train, ["a", "b"]].mean())
    assert fitted.meta["standardization"]["y_mean"] == pytest.approx(frame.loc[train, "y"].mean())


@pytest.mark.parametrize(
    ("setup", "fragments"),
    [
        (lambda p: p.with_suffix(".csv").write_text(""), ["is empty"]),
        (lambda p: p.with_suffix(".csv").write_text("a,y\n"), ["has no data rows"]),
        (lambda p: p.with_suffix(".xlsx").write_bytes(b"PK"), ["suffix '.xlsx'", ".parquet"]),
        (
            lambda p: p.with_suffix(".parquet").write_bytes(b"not parquet"),
            ["not a Parquet file", ".csv"],
        ),
        (lambda p: p.with_suffix(".npz").write_bytes(b"not a zip"), ["cannot read"]),
    ],
)
def test_unreadable_tables(capsys, tmp_path, setup, fragments):
    setup(tmp_path / "t")
    (path,) = tmp_path.glob("t.*")
    code, _, err = run_cli(capsys, "fit", "--data", str(path), "--target", "y")
    assert_usage_error(code, err, *fragments)


def test_features_option_selects_inputs(capsys, frame, tmp_path):
    frame["junk"] = "text"  # non-numeric, but not selected
    path = write(frame, tmp_path / "t.csv")
    code, _, err = run_cli(capsys, "fit", "--data", path, "--target", "y", "--features", "a,zz")
    assert_usage_error(code, err, "unknown column 'zz'")
    code, _, err = run_cli(capsys, "fit", "--data", path, "--target", "y")
    assert_usage_error(code, err, "column 'junk'", "not numeric", "--features")


def test_predict_takes_columns_in_any_order_and_any_format(small_advi_run, tmp_path, capsys):
    x = np.array([-2.0, 0.5, 3.0])
    csv = write(pd.DataFrame({"other": 0.0, "x": x}), tmp_path / "new.csv")
    npz = write(pd.DataFrame({"x": x, "other": 1.0}), tmp_path / "new.npz")
    outputs = []
    for path in (csv, npz):
        code, out, _ = run_cli(capsys, "predict", str(small_advi_run), "--data", path)
        assert code == 0
        outputs.append(out)
    assert outputs[0] == outputs[1]
