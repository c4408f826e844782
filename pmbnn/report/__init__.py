"""A run -> one self-contained HTML page (images embedded) plus report.json with its numbers.

Numbers are computed by diagnostics and predictive_checks; this package only arranges them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pmbnn import jsontext
from pmbnn.data import Dataset, read_labelled
from pmbnn.diagnostics import DEFAULT_THRESHOLDS, FAIL, Diagnosis, diagnose
from pmbnn.families import ClassPrediction, Prediction
from pmbnn.files import Destination, OutputKind
from pmbnn.fitted import FittedBnn
from pmbnn.predictive_checks import (
    Calibration,
    ClassCalibration,
    calibration,
    loo,
    posterior_predictive,
)
from pmbnn.prior_check import (
    PriorPredictive,
    draw_statistics,
    function_statistic,
    prior_predictive_on_rows,
    summarize_statistics,
)
from pmbnn.report import figures
from pmbnn.report.prior_page import feature_intervals, prior_images
from pmbnn.report.templates import render_template
from pmbnn.run import load_metrics, load_run
from pmbnn.text import format_number
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE, OBSERVED, SAMPLE_DIMS, VI_LOSS


def _legacy_report(folder: Path) -> bool:
    """A report written before manifests: exactly its two files, report.json pmbnn's."""
    if {p.name for p in folder.iterdir()} != {"index.html", "report.json"}:
        return False
    try:
        numbers = json.loads((folder / "report.json").read_text())
        return {"run", "spec", "meta", "diagnostics"} <= set(numbers)
    except (OSError, ValueError, TypeError):
        return False


REPORT = OutputKind("report", is_ours=_legacy_report)
TRACE_PROBES = 3  # function values shown in trace and rank plots, beside sigma
GRID_POINTS = 300
SURFACE_POINTS = 80  # per axis of a 2-D decision surface
BAND_LEVELS = (0.05, 0.25, 0.75, 0.95)  # bounds of the central 90% and 50% intervals


def default_report_dir(run_dir: Path) -> Path:
    return Path("reports") / Path(run_dir).resolve().name


def build_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    force: bool = False,
    test_data: str | Path | None = None,
) -> tuple[Path, dict]:
    """Write a self-contained HTML report (and report.json) of a run.

    Parameters
    ----------
    run_dir : path
        A run folder.
    out_dir : path, optional
        The report folder (default: reports/<run folder name>).
    force : bool, default False
        Replace out_dir if it is a report pmbnn wrote.
    test_data : path, optional
        A table with the run's inputs and target to check calibration on, instead of the
        held-out rows stored with the run.

    Returns
    -------
    folder : Path
    numbers : dict
        What report.json holds: spec, metadata, metrics, diagnostics, calibration, LOO.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else default_report_dir(run_dir)
    fitted = load_run(run_dir)
    held_out = None
    if test_data is not None:
        x, y = read_labelled(
            test_data, fitted.feature_names, fitted.target, fitted.family, fitted.classes
        )
        held_out = (x, y, Path(test_data).name)
    with Destination(out_dir, REPORT, force, [run_dir, test_data]) as destination:
        numbers, page = render(fitted, run_dir, held_out)

        def fill(folder: Path) -> None:
            (folder / "index.html").write_text(page, encoding="utf-8")
            (folder / "report.json").write_text(jsontext.dumps(numbers, True))

        return destination.write(fill), numbers


def render(
    fitted: FittedBnn, run_dir: Path, held_out: tuple[np.ndarray, np.ndarray, str] | None = None
) -> tuple[dict, str]:
    """(report.json contents, HTML page) for a loaded run; calibration on `held_out` if given."""
    diagnosis = diagnose(fitted)
    checks = calibration(fitted, held_out)
    loo_result = loo(fitted)
    predictive = posterior_predictive(fitted)
    prior, after = prior_and_posterior(fitted, predictive)
    numbers = {
        "run": run_dir.resolve().name,
        "spec": fitted.spec.model_dump(),
        "meta": fitted.meta,
        "metrics": load_metrics(run_dir),
        "diagnostics": diagnosis.to_dict(),
        "calibration": None if checks is None else checks.to_dict(),
        "loo": loo_result,
        "prior_and_posterior": summarize_statistics(prior.statistics() | after, prior.observed()),
        "feature_scales": _feature_scales(fitted),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plotting libraries' deprecation chatter
        images = _images(fitted, diagnosis, checks, loo_result, predictive)
        scales = fitted.posterior[
            [n for n in (LAYER_SCALE, FEATURE_SCALE) if n in fitted.posterior]
        ]
        images |= {f"prior_{name}": image
                   for name, image in prior_images(prior, after, scales).items()}  # fmt: skip
    page = render_template(
        "page.html.j2",
        name=numbers["run"],
        spec_toml=(run_dir / "spec.toml").read_text(),
        meta_json=json.dumps(fitted.meta, indent=2),
        numbers=numbers,
        diagnosis=diagnosis,
        calibration=checks,
        loo=loo_result,
        images=images,
        fmt=format_number,
        FAIL=FAIL,
    )
    return numbers, page


def _feature_scales(fitted: FittedBnn) -> list[dict] | None:
    """An ARD run's learned scale of each input (5-95% points), largest median first: which
    inputs the network uses, as the report's interval plot shows them."""
    if FEATURE_SCALE not in fitted.posterior:
        return None
    keys = ("feature", "q05", "q25", "q50", "q75", "q95")
    intervals = feature_intervals(fitted.posterior[FEATURE_SCALE])
    return [dict(zip(keys, row, strict=True)) for row in intervals]


def prior_and_posterior(
    fitted: FittedBnn, predictive: xr.DataTree
) -> tuple[PriorPredictive, dict[str, dict[str, np.ndarray]]]:
    """The prior predictive of the run's spec on its training rows, and the posterior's
    per-draw statistics of f and of the replicated y on the same rows."""
    x, y = fitted.training_data()
    rows = Dataset(
        x, y, fitted.feature_names, fitted.target, "the run's training rows", fitted.classes
    )
    prior = prior_predictive_on_rows(fitted.spec, rows, fitted.scaler)
    y_rep = predictive["posterior_predictive"][OBSERVED].stack(sample=SAMPLE_DIMS)
    after = {
        "posterior f": draw_statistics(function_statistic(fitted.distribution(x).expected())),
        "posterior y": draw_statistics(y_rep.transpose("sample", "obs").values),
    }
    return prior, after


def _images(
    fitted: FittedBnn,
    diagnosis: Diagnosis,
    checks: Calibration | ClassCalibration | None,
    loo_result: dict | None,
    predictive: xr.DataTree,
) -> dict[str, str]:
    images: dict[str, str] = {}
    draws = diagnosis.draws
    # Per-feature scales have their own interval plot; the layer scales are traced with sigma.
    shown = draws.isel(probe=_trace_probes(diagnosis)).drop_vars(FEATURE_SCALE, errors="ignore")
    images["trace"] = figures.trace(shown)
    if diagnosis.method == "nuts":
        if shown.sizes["chain"] > 1:
            images["rank"] = figures.rank(shown)
        images["energy"] = figures.energy(fitted.trace)
        bfmi = diagnosis.check("e_bfmi")
        if bfmi.per_chain:
            images["ebfmi"] = figures.ebfmi(bfmi.per_chain, DEFAULT_THRESHOLDS.ebfmi_warn)
    elif VI_LOSS in fitted.trace.children:
        loss = fitted.trace[VI_LOSS].to_dataset()
        images["loss"] = figures.loss_curve(loss["loss"].values, int(loss.attrs["window"]))
    images["ppc"] = figures.ppc(predictive)
    if len(fitted.feature_names) == 1 and not fitted.family.labelled:
        images["fit_1d"] = _fit_1d(fitted)
    if len(fitted.feature_names) == 2 and fitted.family.labelled:
        images["surface"] = _surface_2d(fitted)
    if isinstance(checks, ClassCalibration):
        images["reliability"] = figures.reliability(checks)
        images["confusion"] = figures.confusion(checks)
    elif checks is not None:
        images["coverage"] = figures.coverage(checks)
        images["pit"] = figures.pit_histogram(checks.pit)
        images["residuals"] = figures.residuals(checks)
    if loo_result is not None:
        images["khat"] = figures.khat(np.asarray(loo_result["pareto_k"]), loo_result["k_threshold"])
    return images


def _trace_probes(diagnosis: Diagnosis) -> list[int]:
    """The probe with the worst R-hat (when there is one), then the first train and test probes."""
    labels = list(diagnosis.draws["probe"].values)
    order: list[int] = []
    rhats = [q.get("r_hat") for q in diagnosis.quantities if q["quantity"].startswith("f(")]
    if rhats and rhats[0] is not None:
        order.append(int(np.nanargmax([float(r) if r is not None else np.nan for r in rhats])))
    for split in ("train", "test"):
        order += [i for i, label in enumerate(labels) if label.startswith(split)][:1]
    order += range(len(labels))
    return list(dict.fromkeys(order))[:TRACE_PROBES]


def _fit_1d(fitted: FittedBnn) -> str:
    x_train, y_train = fitted.training_data()
    test = fitted.test_data()
    x_all = x_train if test is None else np.concatenate([x_train, test[0]])
    low, high = x_all.min(), x_all.max()
    margin = 0.1 * (high - low)
    grid = np.linspace(low - margin, high + margin, GRID_POINTS)
    prediction = fitted.predict(grid[:, None], levels=BAND_LEVELS)
    assert isinstance(prediction, Prediction)
    # The epistemic band: the spread over draws of the conditional mean of y.
    location = fitted.distribution(grid[:, None]).expected()
    f_bounds = np.quantile(location, BAND_LEVELS, axis=0)
    q = prediction.quantiles
    return figures.fit_1d(
        grid,
        prediction.mean,
        epistemic={0.9: (f_bounds[0], f_bounds[3]), 0.5: (f_bounds[1], f_bounds[2])},
        total={0.9: (q[0.05], q[0.95]), 0.5: (q[0.25], q[0.75])},
        train=(x_train[:, 0], y_train),
        test=None if test is None else (test[0][:, 0], test[1]),
        labels=(fitted.feature_names[0], fitted.target),
    )


def _surface_2d(fitted: FittedBnn) -> str:
    """A classifier on two inputs: probability and mutual information over a grid."""
    x_train, codes = fitted.training_data()
    margin = 0.15 * np.ptp(x_train, axis=0)
    axes = [
        np.linspace(low - m, high + m, SURFACE_POINTS)
        for low, high, m in zip(x_train.min(axis=0), x_train.max(axis=0), margin, strict=True)
    ]
    gx, gy = np.meshgrid(*axes)
    prediction = fitted.predict(np.column_stack([gx.ravel(), gy.ravel()]))
    assert isinstance(prediction, ClassPrediction)
    two = len(prediction.classes) == 2
    probability = prediction.probabilities[:, 1] if two else prediction.probabilities.max(axis=1)
    shown = f"P({prediction.classes[1]})" if two else "the most probable class"
    return figures.decision_surface(
        (gx, gy),
        probability.reshape(gx.shape),
        prediction.mutual_information.reshape(gx.shape),
        (x_train[:, 0], x_train[:, 1], codes),
        (fitted.feature_names[0], fitted.feature_names[1], shown),
    )
