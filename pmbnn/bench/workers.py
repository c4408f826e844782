"""What a bench fits and keeps per split, on the cluster (`pmbnn.cluster`).

Each split is one `FitTask` with its own seed; the worker returns the split's record (scores,
learned scales, divergences, diagnose's verdict) and the client writes split-K.json as it
arrives, atomically, so an interrupted or retried bench keeps each finished split once.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import xarray as xr
from xarray import DataTree

from pmbnn import jsontext
from pmbnn.cluster import FitTask, connect, run_fits
from pmbnn.evaluation import Metrics
from pmbnn.files import replace_file
from pmbnn.fitted import FittedBnn
from pmbnn.spec import Spec
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE, NOISE, SAMPLE_DIMS, SAMPLE_STATS
from pmbnn.uci import load_uci, split_rows


def run_pending(
    spec: Spec,
    uci_dir: Path,
    dataset: str,
    work_dir: Path,
    pending: list[int],
    workers: int,
    progress: bool,
    scheduler: str | None = None,
) -> int:
    """Fit the pending splits on the cluster, writing split-K.json as each one finishes;
    returns how many workers the cluster had."""
    data = load_uci(uci_dir, dataset)
    tasks = []
    for split in pending:
        train, test = split_rows(uci_dir, dataset, split)
        # Each split has its own seed, so splits are independent replications.
        seeded = spec.with_overrides(inference={"seed": spec.inference.seed + split})
        tasks.append(FitTask(f"split-{split}", seeded, train, test))

    def keep(task: FitTask, record: dict) -> None:
        split = int(task.name.removeprefix("split-"))
        replace_file(work_dir / f"{task.name}.json", jsontext.dumps({"split": split} | record))

    description = f"uci-{dataset}-{spec.inference.method}" if progress else None
    with connect(scheduler, workers) as client:
        run_fits(client, data, tasks, split_record, keep, description)
        return len(client.scheduler_info()["workers"])


def split_record(fitted: FittedBnn, metrics: Metrics) -> dict:
    """A split's scores, how long it took, where the scales went, and whether to trust it."""
    spread = _test_spread(fitted)  # not part of a fit's time
    started = time.perf_counter()
    scores = metrics.test
    assert scores is not None  # every UCI split has test rows
    diagnosis = _diagnosis(fitted)
    seconds = sum(fitted.meta["timings_s"].values()) + time.perf_counter() - started
    return (
        {
            "rmse": scores.rmse,
            "test_ll": scores.lpd,
            "seconds": round(seconds, 2),
            "coverage_90": scores.coverage_90,
            "n_train": metrics.train.n,
            "n_test": scores.n,
        }
        | _learned_scales(fitted.posterior)
        | spread
        | _divergences(fitted.trace)
        | diagnosis
    )


def _test_spread(fitted: FittedBnn) -> dict[str, dict[str, float]]:
    """Where the test intervals' width comes from, beside the RMSE it should match: the mean
    predictive sd over the test rows, split into epistemic and aleatoric, and each chain's
    own noise sd (chains that learned different noise widen the pooled intervals)."""
    test = fitted.test_data()
    if test is None or fitted.classes is not None:
        return {}
    prediction = fitted.predict(test[0])
    spread = {
        part: float(np.mean(getattr(prediction, f"sd_{part}")))
        for part in ("epistemic", "aleatoric", "total")
        if np.isfinite(getattr(prediction, f"sd_{part}")).all()  # Student-t with nu <= 2: inf
    }
    if (noise := fitted.posterior.get(NOISE)) is not None:
        by_chain = noise.mean("draw").values * fitted.scaler.y_scale
        spread |= {f"noise_chain_{c}": float(sd) for c, sd in enumerate(by_chain)}
    return {"test_sd": spread}


def _learned_scales(posterior: xr.Dataset) -> dict[str, dict[str, float]]:
    """Posterior mean of each learned weight scale, by layer or feature: where the data put
    them, to compare with the hyperprior and the fixed scales measured before."""
    return {
        name: dict(zip(map(str, draws[draws.dims[-1]].values),
                       map(float, draws.mean(SAMPLE_DIMS).values), strict=True))
        for name in (LAYER_SCALE, FEATURE_SCALE)
        if (draws := posterior.get(name)) is not None
    }  # fmt: skip


def _divergences(trace: DataTree) -> dict[str, int]:
    """NUTS's divergent transitions (ADVI has none to count)."""
    stats = trace[SAMPLE_STATS].to_dataset() if SAMPLE_STATS in trace.children else None
    if stats is None or "diverging" not in stats:
        return {}
    return {"divergences": int(stats["diverging"].sum())}


def _diagnosis(fitted: FittedBnn) -> dict[str, object]:
    """diagnose's verdict and each check that did not pass: whether the split can be trusted."""
    from pmbnn.diagnostics import FAIL, WARN, diagnose  # in the workers only, when first used

    diagnosis = diagnose(fitted)
    flagged = {c.name: c.verdict.value for c in diagnosis.checks if c.verdict in (WARN, FAIL)}
    return {"verdict": diagnosis.verdict.value, "flagged_checks": flagged}
