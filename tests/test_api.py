"""The public API and the commands built on it: `import pmbnn`, evaluate, held-out tables,
readable run names, typed results, standard exception types."""

from __future__ import annotations

import importlib
import json
import pkgutil
import types

import numpy as np
import pandas as pd
import pytest

import pmbnn
from pmbnn.errors import MissingExtraError, PmbnnError
from tests.helpers import assert_usage_error, run_cli, strict_json

TINY_ADVI = {"method": "advi", "iterations": 1500, "draws": 100}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(60, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": np.sin(x[:, 0]) + 0.1 * x[:, 1]})
    folder = tmp_path_factory.mktemp("table")
    frame[:45].to_csv(folder / "train.csv", index=False)
    frame[45:].to_csv(folder / "test.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def all_rows_run(table, tmp_path_factory):
    """fit --data --test-fraction 0: every row trains (an already split training table)."""
    from pmbnn.cli import main

    out = tmp_path_factory.mktemp("runs") / "all-rows"
    args = ["fit", "--data", str(table / "train.csv"), "--target", "y", "--test-fraction", "0",
            "--method", "advi", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_the_public_api_is_small_and_documented():
    assert set(pmbnn.__all__) >= {"Spec", "load_spec", "fit", "load_run", "save_run",
                                  "diagnose", "build_report", "evaluate", "Prediction"}  # fmt: skip
    for name in pmbnn.__all__:
        doc = getattr(pmbnn, name).__doc__
        assert doc and not doc.startswith(f"{name}("), name  # not a dataclass's signature
    for function in (pmbnn.fit, pmbnn.load_run, pmbnn.save_run, pmbnn.evaluate, pmbnn.diagnose):
        assert "Parameters" in function.__doc__ and "Returns" in function.__doc__, function
    with pytest.raises(AttributeError):
        pmbnn.nothing  # noqa: B018


def test_public_names_stay_themselves_once_every_module_is_imported():
    """Importing a submodule makes it an attribute of the package, over the lazy name: none
    may be named like a public name (`pmbnn.prior_predictive` once became the module as soon
    as the report had been imported)."""
    for module in pkgutil.walk_packages(pmbnn.__path__, "pmbnn."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in pmbnn.__all__:
        assert not isinstance(getattr(pmbnn, name), types.ModuleType), name
    assert (
        callable(pmbnn.prior_predictive) and pmbnn.prior_predictive.__name__ == "prior_predictive"
    )


def test_evaluate_on_the_training_table_equals_the_runs_training_metrics(
    all_rows_run, table, capsys
):
    metrics = json.loads((all_rows_run / "metrics.json").read_text())
    assert metrics["n_test"] == 0 and metrics["n_train"] == 45
    code, out, _ = run_cli(
        capsys, "evaluate", str(all_rows_run), "--data", str(table / "train.csv"), "--json"
    )
    assert code == 0
    scores = strict_json(out)
    assert scores["n"] == 45
    for key in ("rmse", "lpd", "coverage_90"):
        assert scores[key] == metrics[f"train_{key}"], key
    code, out, _ = run_cli(capsys, "evaluate", str(all_rows_run), "--data", str(table / "test.csv"))
    assert code == 0 and "pmbnn evaluate:" in out and "(15 rows)" in out


def test_evaluate_needs_the_target(all_rows_run, table, tmp_path, capsys):
    pd.read_csv(table / "test.csv").drop(columns="y").to_csv(tmp_path / "x.csv", index=False)
    code, _, err = run_cli(capsys, "evaluate", str(all_rows_run), "--data", str(tmp_path / "x.csv"))
    assert_usage_error(code, err, "unknown column 'y'")


def test_a_held_out_table_is_the_test_split(table, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["fit", "--data", str(table / "train.csv"), "--target", "y", "--test-data",
            str(table / "test.csv"), "--method", "advi", "--out", str(out)]  # fmt: skip
    code, stdout, _ = run_cli(capsys, *args)
    assert code == 0 and "test RMSE" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n_train"], metrics["n_test"]) == (45, 15)
    code, evaluated, _ = run_cli(
        capsys, "evaluate", str(out), "--data", str(table / "test.csv"), "--json"
    )
    assert strict_json(evaluated)["rmse"] == metrics["test_rmse"]


def test_report_checks_calibration_on_a_given_table(all_rows_run, table, tmp_path, capsys):
    out = tmp_path / "report"
    args = ("report", str(all_rows_run), "--test-data", str(table / "test.csv"), "--out", str(out))
    assert run_cli(capsys, *args)[0] == 0
    numbers = strict_json((out / "report.json").read_text())
    assert numbers["calibration"]["split"] == "test.csv" and numbers["calibration"]["n"] == 15
    assert "Calibration on test.csv" in (out / "index.html").read_text()


def test_run_names_stay_readable_whatever_the_spec_file_is_called(table, tmp_path, monkeypatch):
    from pmbnn.run import default_run_dir, output_title
    from pmbnn.spec import Spec

    spec = Spec().with_overrides(data={"path": str(table / "train.csv"), "target": "y"})
    assert default_run_dir(spec, "nuts.toml").name.startswith("train-nuts-")
    assert default_run_dir(spec, "wide.toml").name.startswith("train-wide-nuts-")
    assert default_run_dir(spec, None).name.startswith("train-nuts-")
    # prior and sweep folders: `pmbnn sweep sine-gap` writes reports/sweep-sine-gap
    assert output_title(Spec(), "sine-gap") == "sine-gap"
    assert output_title(Spec(), "models/wide.toml") == "sine-gap-wide"


def test_fit_through_the_api_equals_the_cli_run(table, tmp_path, capsys):
    spec = pmbnn.Spec().with_overrides(
        network={"hidden": [4]},
        data={"path": str(table / "train.csv"), "target": "y"},
        inference=TINY_ADVI,
    )
    (tmp_path / "s.toml").write_text(spec.to_toml())
    assert run_cli(capsys, "fit", str(tmp_path / "s.toml"), "--out", str(tmp_path / "cli"))[0] == 0
    fitted, metrics = pmbnn.fit(pmbnn.load_spec(tmp_path / "s.toml"))
    from_cli = pmbnn.load_run(tmp_path / "cli")
    np.testing.assert_array_equal(
        fitted.posterior["w_out"].values, from_cli.posterior["w_out"].values
    )
    assert metrics.to_dict() == json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert isinstance(metrics.test, pmbnn.Scores) and metrics.test.n == 4


def test_fit_summary_says_how_advi_stopped(table, tmp_path, capsys):
    args = ["fit", "--data", str(table / "train.csv"), "--target", "y", "--method", "advi",
            "--out", str(tmp_path / "run")]  # fmt: skip
    _, out, _ = run_cli(capsys, *args)
    assert "iterations, stopped because" in out
    assert "the loss levelled off (converged)" in out or "limit of 30000 iterations" in out


def test_thresholds_are_an_argument(all_rows_run):
    run = pmbnn.load_run(all_rows_run)
    default = pmbnn.diagnose(run)
    lenient = pmbnn.diagnose(run, pmbnn.Thresholds(khat_ok=1e9, khat_fail=1e9))
    assert lenient.check("pareto_k").verdict == "OK"
    assert lenient.check("pareto_k").value == default.check("pareto_k").value


def test_errors_are_standard_exception_types():
    assert issubclass(PmbnnError, ValueError)
    assert issubclass(MissingExtraError, ImportError) and issubclass(MissingExtraError, PmbnnError)
    with pytest.raises(ValueError, match=r"\[network\].activation"):
        pmbnn.Spec().with_overrides(network={"activation": "swish"})


def test_held_out_table_mistakes_are_named(table, tmp_path, capsys):
    train = str(table / "train.csv")
    base = [
        "fit",
        "--data",
        train,
        "--target",
        "y",
        "--method",
        "advi",
        "--out",
        str(tmp_path / "r"),
    ]
    code, _, err = run_cli(capsys, *base, "--test-data", train)
    assert_usage_error(code, err, "is the training table")
    code, _, err = run_cli(capsys, *base, "--test-data", train, "--test-fraction", "0.2")
    assert_usage_error(code, err, "not allowed with argument")
    assert not (tmp_path / "r").exists()


def test_the_old_models_folder_path_still_names_a_built_in_spec():
    from pmbnn.spec import load_spec

    assert load_spec("models/uci-1x50.toml").network.hidden == [50]


def test_any_table_is_matched_by_column_name(all_rows_run, table):
    """A pyarrow table (any table speaking the Arrow or interchange protocol) with its columns
    reordered predicts as the DataFrame does: np.asarray would have read it by position."""
    import pyarrow as pa

    fitted = pmbnn.load_run(all_rows_run)
    frame = pd.read_csv(table / "test.csv")
    arrow = pa.table({"y": frame["y"], "b": frame["b"], "a": frame["a"]})
    np.testing.assert_array_equal(fitted.predict(arrow).mean, fitted.predict(frame).mean)
    # A stream of record batches reads once: evaluate must not read it a second time.
    stream = pa.RecordBatchReader.from_batches(arrow.schema, arrow.to_batches())
    expected = pmbnn.evaluate(fitted, frame, frame["y"].to_numpy())
    assert pmbnn.evaluate(fitted, stream, frame["y"].to_numpy()) == expected
    # An array that speaks the same protocol but names no columns is still read in order.
    import xarray as xr

    matrix = xr.DataArray(frame[["a", "b"]].to_numpy(), dims=("row", "feature"))
    np.testing.assert_array_equal(fitted.predict(matrix).mean, fitted.predict(frame).mean)


@pytest.mark.parametrize(
    ("y", "fragment"),
    [
        (lambda y: y[:1], "give one target per row"),
        (lambda y: np.r_[y[:-1], np.nan], "missing or infinite value in row 14"),
        (lambda y: y.astype(str), "the run needs numbers"),
    ],
)
def test_evaluate_names_a_bad_target(all_rows_run, table, y, fragment):
    """One target per row, finite, numeric: not broadcast from one value, nor blamed on the
    fit."""
    fitted = pmbnn.load_run(all_rows_run)
    frame = pd.read_csv(table / "test.csv")
    with pytest.raises(PmbnnError, match=fragment):
        pmbnn.evaluate(fitted, frame, y(frame["y"].to_numpy()))


def test_fit_takes_a_spec_file_or_a_built_in_name(table, tmp_path):
    spec = pmbnn.Spec().with_overrides(
        data={"path": str(table / "train.csv"), "target": "y"},
        inference={**TINY_ADVI, "iterations": 200, "draws": 20},
    )
    path = tmp_path / "spec.toml"
    path.write_text(spec.to_toml())
    from_file, _ = pmbnn.fit(path)
    from_spec, _ = pmbnn.fit(spec)
    np.testing.assert_array_equal(
        from_file.posterior["w_out"].values, from_spec.posterior["w_out"].values
    )
