"""`pmbnn sweep`: a grid of spec settings x seeds x folds, fitted on a Dask cluster, scored on
held-out rows, resumable.

`grid` turns the command line into fits (`FitTask`s); this module runs them, keeping each
finished fit in ``<out>/tasks/`` so a rerun does only the rest, and writes the summary:
per grid point its test log predictive density per held-out row (averaged over the seeds)
with the standard error over rows, the paired difference to the best point row by row (as
ArviZ's compare does), the other scores over its (seed, fold) replicates, as ``sweep.json``
and ``sweep.md``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pmbnn import jsontext
from pmbnn.cluster import FitTask, connect, default_workers, run_fits
from pmbnn.data import Dataset
from pmbnn.errors import PmbnnError
from pmbnn.evaluation import Metrics
from pmbnn.files import exclusive, replace_file
from pmbnn.fitted import FittedBnn
from pmbnn.interrupts import CompletedBeforeInterrupt
from pmbnn.locks import lock_path
from pmbnn.sweep.grid import (
    Plan,
    check_families,
    load_folds,
    make_tasks,
    parse_grid,
    parse_seeds,
)

__all__ = ["Plan", "markdown", "parse_grid", "parse_seeds", "run_sweep", "summarize"]
PLAN_FILE = "plan.json"


def run_sweep(
    plan: Plan,
    out_dir: Path,
    workers: int | None = None,
    progress: bool = False,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Fit every (point, seed, fold) not already in ``out_dir/tasks``, then write and return
    the summary. A folder holding another plan's fits is refused, not mixed in."""
    data, folds = load_folds(plan)
    check_families(plan, data)
    tasks = make_tasks(plan, folds)
    task_dir = out_dir / "tasks"
    with exclusive(task_dir):
        _check_folder(out_dir, plan, data.fingerprint)
        created = not task_dir.exists()
        pending = [task for task in tasks if not (task_dir / f"{task.name}.json").is_file()]
        try:
            if pending:
                task_dir.mkdir(parents=True, exist_ok=True)
                replace_file(task_dir / PLAN_FILE, jsontext.dumps(_stored_plan(plan, data)))

                def keep(task: FitTask, record: dict[str, Any]) -> None:
                    replace_file(task_dir / f"{task.name}.json", jsontext.dumps(record))

                # sized for the most demanding point (a grid may vary the method or chains)
                fewest = min(default_workers(task.spec, len(pending)) for task in pending)
                workers = min(workers or fewest, len(pending))
                description = f"sweep of {len(tasks)} fits" if progress else None
                with connect(scheduler, workers) as client:
                    run_fits(client, data, pending, task_record, keep, description)
        except BaseException as exc:
            finished = len(list(task_dir.glob("point-*.json")))
            if created and not finished:
                shutil.rmtree(task_dir, ignore_errors=True)  # nothing worth resuming
            if finished and isinstance(exc, KeyboardInterrupt):
                raise CompletedBeforeInterrupt(
                    f"the {finished} finished fit(s) are kept in {task_dir}; the same command "
                    "resumes from them"
                ) from exc
            raise
        records = {t.name: json.loads((task_dir / f"{t.name}.json").read_text()) for t in tasks}
        summary = summarize(plan, data.source, records)
        replace_file(out_dir / "sweep.json", jsontext.dumps(summary))
        replace_file(out_dir / "sweep.md", markdown(summary))
    return summary


def task_record(fitted: FittedBnn, metrics: Metrics) -> dict[str, Any]:
    """What a fit in a sweep keeps: its held-out scores, each held-out row's log predictive
    density (for standard errors over rows) and its time."""
    assert metrics.test is not None  # every fold holds rows out
    held_out = fitted.test_data()
    assert held_out is not None
    seconds = sum(fitted.meta["timings_s"].values())
    rows = fitted.log_predictive_density(*held_out).tolist()
    return (
        {"n_test": metrics.test.n, "seconds": round(seconds, 2)}
        | metrics.test.to_dict()
        | {"lpd_rows": rows}
    )


def _stored_plan(plan: Plan, data: Dataset) -> dict[str, Any]:
    """The plan with its data's fingerprint: an edited table is another sweep."""
    return json.loads(jsontext.dumps(plan.to_dict() | {"data_fingerprint": data.fingerprint}))


def _check_folder(out_dir: Path, plan: Plan, fingerprint: str) -> None:
    """Only a folder this plan's sweep wrote (or an empty or new one) is written to."""
    stored = out_dir / "tasks" / PLAN_FILE
    if stored.is_file():
        try:
            found = json.loads(stored.read_text())
        except ValueError:
            found = {}
        expected = json.loads(jsontext.dumps(plan.to_dict()))
        if {k: v for k, v in found.items() if k != "data_fingerprint"} != expected:
            raise PmbnnError(f"{out_dir} holds a sweep of another grid, seeds, folds or spec; "
                             "remove it to start over, or choose another --out")  # fmt: skip
        if found.get("data_fingerprint") != fingerprint:
            raise PmbnnError(f"{out_dir} holds a sweep of other data (the table changed since); "
                             "remove it to start over, or choose another --out")  # fmt: skip
    elif out_dir.exists() and any(
        p.name != "tasks" and p != lock_path(out_dir / "tasks") for p in out_dir.iterdir()
    ):
        raise PmbnnError(f"{out_dir} exists and is not a pmbnn sweep; choose another --out")


def summarize(plan: Plan, source: str, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per point: the test LPD per held-out row, averaged over the seeds, as its mean over rows
    with the standard error over rows (the test set's sampling error, which seeds alone
    hide), and the paired difference to the best point row by row, as ArviZ's compare; the
    share of rows inside the 90% interval, pooled; every other score's mean over the (seed,
    fold) replicates with the standard error of that mean (None from one replicate)."""
    replicates = [f"seed-{s}-fold-{k}" for s in plan.seeds for k in range(plan.folds)]
    table = [[records[f"point-{p}-{r}"] for r in replicates] for p in range(len(plan.points()))]
    rows = np.array([_rows(plan, records, p) for p in range(len(table))])
    best = int(np.argmax(rows.mean(axis=1)))
    points = []
    for p, (settings, row) in enumerate(zip(plan.points(), table, strict=True)):
        scores = {key: _mean_se(np.array([r[key] for r in row]))
                  for key in row[0] if key not in PER_ROW}  # fmt: skip
        if "coverage_90" in row[0]:
            covered = sum(r["coverage_90"] * r["n_test"] for r in row)
            scores["coverage_90"] = {"mean": covered / sum(r["n_test"] for r in row), "se": None}
        points.append(
            {"point": p, "settings": settings, "replicates": len(row)}
            | scores
            | {"lpd": _row_mean_se(rows[p]), "lpd_diff_to_best": _row_mean_se(rows[p] - rows[best])}
            | {"seconds": float(sum(r["seconds"] for r in row))}
        )
    return {
        "data": source,
        "target": plan.spec.data.target,
        "family": plan.spec.likelihood.family,
        "method": plan.spec.inference.method,
        "folds": plan.folds,
        "seeds": plan.seeds,
        "grid": plan.grid,
        "best": {"point": best, "settings": plan.points()[best]},
        "points": points,
        "seconds_total": float(sum(r["seconds"] for r in records.values())),
        "spec": plan.spec.model_dump(exclude_none=True),
    }


PER_ROW = ("n_test", "seconds", "lpd_rows", "lpd", "coverage_90")


def _rows(plan: Plan, records: dict[str, dict[str, Any]], point: int) -> np.ndarray:
    """The point's log predictive density of every held-out row (folds in order), each the
    mean over the fit seeds."""
    return np.concatenate([
        np.mean([records[f"point-{point}-seed-{s}-fold-{k}"]["lpd_rows"] for s in plan.seeds],
                axis=0)
        for k in range(plan.folds)
    ])  # fmt: skip


def _row_mean_se(values: np.ndarray) -> dict[str, float | None]:
    """Mean per row and its standard error, sqrt(var / n) as in ArviZ's compare (ddof 0)."""
    return {"mean": float(values.mean()), "se": float(np.sqrt(values.var() / len(values)))}


def _mean_se(values: np.ndarray) -> dict[str, float | None]:
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return {"mean": float(values.mean()), "se": se}


SCORE_NAMES = {"lpd": "test LPD", "rmse": "RMSE", "coverage_90": "90% cover.",
               "accuracy": "accuracy", "log_loss": "log loss", "brier": "Brier", "ece": "ECE",
               "deviance": "deviance"}  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table, one row per point, the best marked."""
    keys = list(summary["grid"])
    scores = [key for key in SCORE_NAMES if key in summary["points"][0]]
    header = [*keys, *(SCORE_NAMES[s] for s in scores), "LPD - best", ""]
    lines = [
        f"# Sweep: {summary['data']} ({summary['family']}, {summary['method']})",
        "",
        f"{len(summary['points'])} grid points x {len(summary['seeds'])} seed(s) x "
        + (f"{summary['folds']}-fold cross-validation" if summary["folds"] > 1
           else "the spec's train/test split")
        + "; test LPD per held-out row (mean over the seeds), its mean +- standard error over "
        "the rows, and the paired difference to the best row by row; 90% coverage pooled over "
        "rows; the other scores' mean over the replicates +- its standard error.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]  # fmt: skip
    for point in summary["points"]:
        cells = [json.dumps(point["settings"][key]) for key in keys]
        cells += [_cell(point[s]) for s in scores] + [_cell(point["lpd_diff_to_best"])]
        cells.append("best" if point["point"] == summary["best"]["point"] else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Total fit time {summary['seconds_total']:.0f} s.", ""]
    return "\n".join(lines)


def _cell(value: dict[str, float | None]) -> str:
    se = value["se"]
    return f"{value['mean']:.4f}" + (f" +- {se:.4f}" if se is not None else "")
