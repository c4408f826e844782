"""sweep: a grid of spec settings x seeds x folds on a Dask cluster, scored and resumable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pmbnn.data import load_dataset
from pmbnn.errors import PmbnnError
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.spec import load_builtin_spec
from pmbnn.sweep import Plan, parse_grid, parse_seeds, run_sweep
from pmbnn.sweep.grid import load_folds, point_spec
from tests.helpers import assert_usage_error, run_cli, strict_json

GRID = ["prior.weight_scale=0.5,2"]


@pytest.fixture(scope="module")
def base_spec(tmp_path_factory):
    """The built-in example as a table, a network of 4 units and a short ADVI."""
    spec = load_builtin_spec("sine-gap").with_overrides(
        network={"hidden": [4]}, inference={"method": "advi", "iterations": 800, "draws": 100}
    )
    data = load_dataset(spec.data, spec.inference.seed)
    path = tmp_path_factory.mktemp("sweep-data") / "sine.csv"
    np.savetxt(path, np.c_[data.x, data.y], delimiter=",", header="x,y", comments="")
    return spec.with_overrides(data={"path": str(path), "target": "y"})


@pytest.fixture(scope="module")
def sweep_run(base_spec, tmp_path_factory):
    plan = Plan(base_spec, parse_grid(GRID, base_spec), [0], folds=2)
    out = tmp_path_factory.mktemp("sweep") / "out"
    return plan, out, run_sweep(plan, out, workers=2)


def test_points_are_the_mean_of_serial_fits_on_the_same_folds(sweep_run):
    """Each point's scores on a 2-worker LocalCluster equal those of the same fits run
    serially in this process (to 1e-9): the test LPD per held-out row, its mean and its
    standard error over the rows (sqrt(var / n), as ArviZ's compare), the paired difference
    to the best point row by row, and the 90% coverage pooled over rows."""
    plan, _, summary = sweep_run
    data, folds = load_folds(plan)
    assert len(folds) == 2 and sorted(np.concatenate([t for _, t in folds])) == list(
        range(len(data.y))
    )  # every row held out once
    rows, coverage = [], []
    for point in plan.points():
        refitter, per_row, covered = Refitter(), [], 0.0
        for train, test in folds:
            fitted, metrics = fit_split(point_spec(plan, point, 0), data, train, test,
                                        refitter=refitter)  # fmt: skip
            per_row.append(fitted.log_predictive_density(data.x[test], data.y[test]))
            covered += metrics.test.coverage_90 * len(test)
        rows.append(np.concatenate(per_row))
        coverage.append(covered / len(data.y))
    best = int(np.argmax([r.mean() for r in rows]))
    assert summary["best"]["point"] == best
    for stored, mine, cover in zip(summary["points"], rows, coverage, strict=True):
        np.testing.assert_allclose(stored["lpd"]["mean"], mine.mean(), rtol=1e-9)
        np.testing.assert_allclose(stored["lpd"]["se"], mine.std() / np.sqrt(len(mine)), rtol=1e-9)
        diff = mine - rows[best]
        np.testing.assert_allclose(
            [stored["lpd_diff_to_best"]["mean"], stored["lpd_diff_to_best"]["se"]],
            [diff.mean(), diff.std() / np.sqrt(len(diff))], rtol=1e-9, atol=1e-12,
        )  # fmt: skip
        np.testing.assert_allclose(stored["coverage_90"]["mean"], cover, rtol=1e-9)
    assert summary["points"][best]["lpd_diff_to_best"] == {"mean": 0.0, "se": 0.0}
    assert [p["settings"] for p in summary["points"]] == [
        {"prior.weight_scale": 0.5}, {"prior.weight_scale": 2}]  # fmt: skip


def test_results_are_json_and_markdown(sweep_run):
    _, out, summary = sweep_run
    assert strict_json((out / "sweep.json").read_text()) == json.loads(json.dumps(summary))
    table = (out / "sweep.md").read_text()
    assert "| prior.weight_scale | test LPD | RMSE | 90% cover. | LPD - best |  |" in table
    assert table.count("| best |") == 1
    assert all(p["replicates"] == 2 and p["lpd"]["se"] is not None for p in summary["points"])


def test_an_interrupted_sweep_resumes(sweep_run):
    plan, out, summary = sweep_run
    tasks = out / "tasks"
    kept = tasks / "point-0-seed-0-fold-0.json"
    before = kept.stat().st_mtime_ns
    (tasks / "point-1-seed-0-fold-1.json").unlink()  # as if interrupted before it finished
    again = run_sweep(plan, out, workers=1)
    assert kept.stat().st_mtime_ns == before  # finished fits are not refitted
    assert again["points"][1]["lpd"]["mean"] == pytest.approx(
        summary["points"][1]["lpd"]["mean"], rel=1e-9
    )
    other = Plan(plan.spec, parse_grid(["prior.weight_scale=1"], plan.spec), [0], folds=2)
    with pytest.raises(PmbnnError, match="holds a sweep of another grid"):
        run_sweep(other, out)
    stored = tasks / "plan.json"
    kept_plan = stored.read_text()
    stored.write_text(kept_plan.replace(json.loads(kept_plan)["data_fingerprint"], "edited"))
    try:  # as if the table had been edited since: its fits are not mixed with new ones
        with pytest.raises(PmbnnError, match="holds a sweep of other data"):
            run_sweep(plan, out)
    finally:
        stored.write_text(kept_plan)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["network.hidden=[50],[100,100]"], {"network.hidden": [[50], [100, 100]]}),
        (["prior.weight_scale=0.5,1", "inference.method=advi,nuts"],
         {"prior.weight_scale": [0.5, 1], "inference.method": ["advi", "nuts"]}),
        (["network.activation=tanh", "prior.fan_in=true,false"],
         {"network.activation": ["tanh"], "prior.fan_in": [True, False]}),
    ],
)  # fmt: skip
def test_grid_values_are_read_as_toml_or_words(arguments, expected):
    assert parse_grid(arguments, load_builtin_spec("sine-gap")) == expected


@pytest.mark.parametrize(
    ("argument", "fragments"),
    [
        ("prior.wieght_scale=1", ["unknown key [prior].wieght_scale", "allowed keys: kind"]),
        ("inference.method=sgd", ["[inference].method = 'sgd' is not allowed",
                                  "expected 'advi', 'fullrank_advi' or 'nuts'"]),
        ("prior.weight_scale=-1", ["--grid prior.weight_scale=-1", "greater than 0"]),
        ("priors.weight_scale=1", ["'priors.weight_scale' is not a spec key", "network, prior"]),
        ("data.path=a.csv", ["cannot vary data.path", "--data"]),
        ("inference.seed=1,2", ["--seeds"]),
        ("network.hidden=[50,", ["unclosed bracket"]),
        ("network.hidden", ["write KEY=V1,V2"]),
    ],
)  # fmt: skip
def test_an_invalid_grid_names_the_key_and_what_is_allowed(argument, fragments, capsys, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "sweep", "sine-gap", "--grid", argument, "--out", str(out))
    assert_usage_error(code, err, *fragments)
    assert not out.exists()


def test_seeds_and_fold_counts(base_spec, tmp_path, capsys):
    assert parse_seeds("0-2,5", base_spec) == [0, 1, 2, 5]
    assert parse_seeds(None, base_spec) == [base_spec.inference.seed]
    for text, message in [("5-2", "--seeds 5-2 counts down; write 2-5"),
                          ("4294967296", "passes the largest seed"),
                          ("0-4000000000", "gives more than 1000")]:  # fmt: skip
        code, _, err = run_cli(capsys, "sweep", "sine-gap", "--grid", *GRID, "--seeds", text)
        assert_usage_error(code, err, message)
    code, _, err = run_cli(capsys, "sweep", "sine-gap", "--grid", *GRID, "--test-fraction", "0.2")
    assert_usage_error(code, err, "leave out --test-fraction")
    code, _, err = run_cli(capsys, "sweep", "sine-gap", "--grid", *GRID, "--folds", "500",
                           "--out", str(tmp_path / "out"))  # fmt: skip
    assert_usage_error(code, err, "120 rows cannot make 500 folds")
    code, _, err = run_cli(capsys, "sweep", "sine-gap", "--grid", *GRID, "--folds", "0")
    assert_usage_error(code, err, "--folds must be at least 1")
    assert list(Path(tmp_path).iterdir()) == []


def test_a_grid_of_likelihoods_is_checked_before_any_fit(base_spec, tmp_path):
    """A density is not ranked against a probability mass, and each family must be able to
    model the target: both refused before a cluster starts."""
    mixed = Plan(base_spec, parse_grid(["likelihood.family=gaussian,poisson"], base_spec), [0], 2)
    with pytest.raises(PmbnnError, match="not on one scale"):
        run_sweep(mixed, tmp_path / "out")
    positive = parse_grid(["likelihood.family=gaussian,lognormal"], base_spec)
    with pytest.raises(PmbnnError, match="'y'"):  # lognormal: sine targets are not positive
        run_sweep(Plan(base_spec, positive, [0], 2), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_dasks_configured_scheduler_is_used(base_spec, capsys, tmp_path):
    """Without --scheduler, Dask's own setting (DASK_SCHEDULER_ADDRESS) names the cluster;
    unreachable, it is one line naming it, and nothing is written."""
    import socket

    import dask

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens
    out = tmp_path / "out"
    csv = ["--data", base_spec.data.path, "--target", "y"]
    with dask.config.set({"scheduler-address": address}):
        code, _, err = run_cli(capsys, "sweep", *csv, "--grid", *GRID, "--out", str(out))
    assert_usage_error(code, err, f"cannot reach the Dask scheduler at {address}")
    assert not out.exists()
