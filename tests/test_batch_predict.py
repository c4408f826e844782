"""Out-of-core prediction (`pmbnn predict RUN --data DATASET --out NAME.parquet`): the same
numbers as in memory, to the bit, rows in order; bad input refused with nothing written."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pmbnn.cli import main
from pmbnn.cluster import connect
from pmbnn.run import load_run
from pmbnn.spec import load_builtin_spec
from tests.helpers import assert_usage_error, run_cli

# Uneven partitions, none a multiple of the prediction block (256 rows for these runs): the
# partitions' blocks and the in-memory blocks are cut at different rows.
SIZES = [300, 7, 1, 450]


@pytest.fixture(scope="module")
def scheduler():
    """One local cluster for the module (a start costs seconds); commands join it."""
    with connect(None, 2) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory) -> Path:
    """A quick ADVI fit of a tiny Bernoulli network on the two-moons example."""
    spec = load_builtin_spec("two-moons").with_overrides(
        network={"hidden": [4]}, inference={"method": "advi", "iterations": 300, "draws": 100}
    )
    folder = tmp_path_factory.mktemp("classifier")
    (folder / "spec.toml").write_text(spec.to_toml())
    assert main(["fit", str(folder / "spec.toml"), "--out", str(folder / "run")]) == 0
    return folder / "run"


def inputs(names: list[str], rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows of the features (and a column the run does not use), beyond the training range."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.uniform(-5, 5, size=(rows, len(names))), columns=names)
    return frame.assign(note="not a feature")


def write_parts(folder: Path, frame: pd.DataFrame, index: bool) -> Path:
    """frame as Parquet part files of SIZES rows, with or without its index."""
    folder.mkdir()
    start = 0
    for number, size in enumerate(SIZES):
        frame.iloc[start : start + size].to_parquet(folder / f"part.{number}.parquet", index=index)
        start += size
    return folder


def test_a_rows_prediction_does_not_depend_on_the_rows_predicted_with_it(
    small_advi_run, classifier_run
):
    for run in (small_advi_run, classifier_run):
        fitted = load_run(run)
        x = inputs(fitted.feature_names, sum(SIZES))
        whole = fitted.predict(x).to_frame()
        cuts = np.cumsum([0, *SIZES])
        parts = [fitted.predict(x.iloc[a:b]).to_frame() for a, b in pairwise(cuts)]
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, check_exact=True)
        pd.testing.assert_frame_equal(fitted.predict_frame(x), whole, check_exact=True)


def test_out_of_core_equals_in_memory_to_the_bit_rows_in_order(
    small_advi_run, classifier_run, scheduler, tmp_path, capsys
):
    for name, run, index in [
        ("regression", small_advi_run, False),
        ("classes", classifier_run, True),
    ]:
        fitted = load_run(run)
        x = inputs(fitted.feature_names, sum(SIZES), seed=1)
        if index:  # a stored index of its own comes back with the predictions
            x.index = pd.Index([f"row-{i}" for i in range(len(x))], name="key")
        data = write_parts(tmp_path / f"{name}-data", x, index=index)
        out = tmp_path / f"{name}.parquet"
        code, _, err = run_cli(
            capsys, "predict", str(run), "--data", str(data), "--out", str(out),
            "--scheduler", scheduler,
        )  # fmt: skip
        assert code == 0, err
        assert f"wrote {len(x)} predictions to {out} ({len(SIZES)} part files)" in err
        # The in-memory path, whose labels (Python objects there) Parquet stores typed.
        expected = fitted.predict(x).to_frame().infer_objects()
        if index:
            expected.index = x.index
        parts = sorted(p.name for p in out.glob("*.parquet"))
        assert parts == [f"part.{i:05d}.parquet" for i in range(len(SIZES))]
        assert [len(pd.read_parquet(out / part)) for part in parts] == SIZES
        got = pd.read_parquet(out)  # any Parquet reader: the manifest's name starts with "_"
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_force_replaces_only_a_predictions_folder_pmbnn_wrote(
    small_advi_run, scheduler, tmp_path, capsys
):
    data = write_parts(tmp_path / "data", inputs(["x"], sum(SIZES)), index=False)
    out = tmp_path / "preds.parquet"
    command = ["predict", str(small_advi_run), "--data", str(data), "--out", str(out)]
    assert run_cli(capsys, *command, "--scheduler", scheduler)[0] == 0
    code, _, err = run_cli(capsys, *command, "--scheduler", scheduler)
    assert_usage_error(code, err, "already exists", "--force")
    code, _, err = run_cli(capsys, *command, "--scheduler", scheduler, "--force")
    assert code == 0, err

    mine = tmp_path / "mine.parquet"
    mine.mkdir()
    (mine / "part.0.parquet").write_text("my own data")
    for force in ([], ["--force"]):
        command = ["predict", str(small_advi_run), "--data", str(data), "--out", str(mine)]
        code, _, err = run_cli(capsys, *command, *force)
        assert_usage_error(code, err, str(mine))
    assert [p.name for p in mine.iterdir()] == ["part.0.parquet"]
    assert (mine / "part.0.parquet").read_text() == "my own data"


def test_a_missing_feature_column_is_one_line_and_nothing_written(small_advi_run, tmp_path, capsys):
    data = write_parts(tmp_path / "data", inputs(["z"], sum(SIZES)), index=False)
    out = tmp_path / "preds.parquet"
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(data), "--out", str(out)
    )
    assert_usage_error(code, err, "unknown column 'x'", "which the run was fitted on", "z")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_an_empty_table_is_one_line_and_nothing_written(small_advi_run, tmp_path, capsys):
    """As in memory: zero rows is a mistake, not an empty predictions folder and exit 0."""
    data = write_parts(tmp_path / "data", inputs(["x"], 0), index=False)
    out = tmp_path / "preds.parquet"
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(data), "--out", str(out)
    )
    assert_usage_error(code, err, "has no data rows")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_workers_with_a_scheduler_are_refused_not_ignored(small_advi_run, tmp_path, capsys):
    data = write_parts(tmp_path / "data", inputs(["x"], 5), index=False)
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(data), "--out",
        str(tmp_path / "preds.parquet"), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2",
    )  # fmt: skip
    assert_usage_error(code, err, "--workers sizes a local cluster", "tcp://127.0.0.1:1")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_a_bad_value_in_one_partition_stops_everything(small_advi_run, scheduler, tmp_path, capsys):
    x = inputs(["x"], sum(SIZES))
    x.loc[SIZES[0] + 3, "x"] = np.nan  # in the second partition
    data = write_parts(tmp_path / "data", x, index=False)
    out = tmp_path / "preds.parquet"
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(data), "--out", str(out),
        "--scheduler", scheduler,
    )  # fmt: skip
    errors = [line for line in err.splitlines() if line.startswith("pmbnn: error:")]
    assert code == 2 and len(errors) == 1, err
    assert "partition 1 of" in errors[0] and "data row 4" in errors[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]  # no output, no staging folder


def test_a_folder_of_parts_needs_a_parquet_output(small_advi_run, tmp_path, capsys):
    data = write_parts(tmp_path / "data", inputs(["x"], sum(SIZES)), index=False)
    code, _, err = run_cli(capsys, "predict", str(small_advi_run), "--data", str(data))
    assert_usage_error(code, err, "--out NAME.parquet")
    table = tmp_path / "x.csv"
    inputs(["x"], 5).to_csv(table, index=False)
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(table), "--workers", "2"
    )
    assert_usage_error(code, err, "--workers", "--out NAME.parquet")
