"""The command line: predict output, and bad input -> one line, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pmbnn.run import load_run
from tests.helpers import assert_usage_error, run_cli


def test_predict_writes_one_row_per_input_in_order(small_advi_run, tmp_path, capsys):
    x = np.array([3.0, -2.0, 0.0, 1.5])
    pd.DataFrame({"extra": 1, "x": x}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "pred.csv"
    predict_args = ("predict", str(small_advi_run), "--data", str(tmp_path / "new.csv"))
    code, _, _ = run_cli(capsys, *predict_args, "--out", str(out))
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["mean", "sd_total", "sd_epistemic", "sd_aleatoric", "q05", "q95"]
    expected = load_run(small_advi_run).predict(x[:, None])
    np.testing.assert_allclose(table["mean"], expected.mean, rtol=1e-12)
    assert np.all(table["q05"] < table["mean"]) and np.all(table["mean"] < table["q95"])
    code, _, err = run_cli(capsys, *predict_args, "--out", str(out))
    assert_usage_error(code, err, "already exists", "--force")


def test_predict_needs_the_fitted_columns(small_advi_run, tmp_path, capsys):
    pd.DataFrame({"z": [1.0]}).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = run_cli(
        capsys, "predict", str(small_advi_run), "--data", str(tmp_path / "new.csv")
    )
    assert_usage_error(code, err, "unknown column 'x'")


def test_predict_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", str(tmp_path), "--data", "x.csv")
    assert_usage_error(code, err, "is not a pmbnn run")


@pytest.fixture
def table(tmp_path):
    def write(frame: pd.DataFrame) -> str:
        path = tmp_path / "data.csv"
        frame.to_csv(path, index=False)
        return str(path)

    return write


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["fit", "missing.toml"], ["spec file not found: missing.toml"]),
        (["fit", "--data", "missing.csv", "--target", "y"], ["data file not found"]),
        (["fit", "--method", "sgld"], ["invalid choice: 'sgld'"]),
        (["fit", "--seed", "abc"], ["invalid int value"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ],
)
def test_usage_errors(capsys, args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *args)
    assert_usage_error(code, err, *fragments)
    assert not (tmp_path / "runs").exists()


def test_nan_in_target(capsys, table, tmp_path):
    path = table(pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, np.nan, 2.0]}))
    code, _, err = run_cli(
        capsys, "fit", "--data", path, "--target", "y", "--out", str(tmp_path / "r")
    )
    assert_usage_error(code, err, "1 missing or infinite value(s)", "column 'y' at data row 2")
    assert not (tmp_path / "r").exists()


def test_unknown_target_column(capsys, table, tmp_path):
    path = table(pd.DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}))
    code, _, err = run_cli(
        capsys, "fit", "--data", path, "--target", "price", "--out", str(tmp_path / "r")
    )
    assert_usage_error(code, err, "unknown column 'price'", "columns are: x, y")


def test_non_numeric_column(capsys, table, tmp_path):
    path = table(pd.DataFrame({"x": ["a", "b", "c"], "y": [1.0, 2.0, 3.0]}))
    code, _, err = run_cli(
        capsys, "fit", "--data", path, "--target", "y", "--out", str(tmp_path / "r")
    )
    assert_usage_error(code, err, "column 'x'", "not numeric")


def test_invalid_spec_via_cli(capsys, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[network]\nactivation = "swish"\n')
    code, _, err = run_cli(capsys, "fit", str(spec))
    assert_usage_error(code, err, "[network].activation = 'swish'")


def test_existing_run_is_kept_without_force(small_advi_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in small_advi_run.iterdir()}
    code, _, err = run_cli(capsys, "fit", "--out", str(small_advi_run))
    assert_usage_error(code, err, "already exists", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in small_advi_run.iterdir()} == before


def test_force_replaces_a_run_atomically(small_advi_run, tmp_path, capsys):
    target = tmp_path / "copy"
    import shutil

    shutil.copytree(small_advi_run, target)
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        load_run(small_advi_run).spec.to_toml().replace("iterations = 3000", "iterations = 600")
    )
    code, out, _ = run_cli(capsys, "fit", str(spec), "--out", str(target), "--force")
    assert code == 0 and "run written to" in out
    assert load_run(target).spec.inference.iterations == 600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_module_entry_point_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pmbnn", "fit", str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    missing = tmp_path / "none.toml"
    expected = (
        f"pmbnn: error: spec file not found: {missing} (give the path of a .toml spec, or a "
        "built-in one: hetero-sine, outlier-sine, sine-gap, two-moons, uci-1x50, uci-1x50-nuts, "
        "uci-1x50-nuts-wide)"
    )
    assert result.stderr.strip() == expected


def test_an_internal_error_is_one_line_and_its_own_exit_code(monkeypatch, capsys):
    """A bug is not bad input (2) nor a failed check (1): exit 3, one line, no traceback."""
    from pmbnn import cli

    def broken() -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "main", broken)
    with pytest.raises(SystemExit) as info:
        cli.entry_point()
    assert info.value.code == cli.INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error (a bug in pmbnn" in err and "ZeroDivisionError" in err
