"""The worker processes of a bench: one model compiled per process, refitted split after split.

A pool of spawned interpreters (no forked PyTensor or thread state); each worker dies with the
bench, and an interrupted bench stops them at once rather than waiting for their fits.
"""

from __future__ import annotations

import os
import time
import tomllib
import warnings
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from multiprocessing import active_children, get_context
from pathlib import Path

import xarray as xr
from xarray import DataTree

from pmbnn import jsontext
from pmbnn.errors import DataWarning
from pmbnn.files import replace_file
from pmbnn.fitted import FittedBnn
from pmbnn.interrupts import die_with_parent
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.spec import Spec
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE, SAMPLE_DIMS, SAMPLE_STATS
from pmbnn.uci import load_uci, split_rows


def run_pending(
    spec: Spec,
    uci_dir: Path,
    dataset: str,
    work_dir: Path,
    pending: list[int],
    workers: int,
    progress: bool,
) -> None:
    """Fit the pending splits in `workers` processes, each writing split-K.json when done."""
    context = get_context("spawn")  # fresh interpreters: no forked PyTensor or thread state
    arguments = (os.getpid(), spec.to_toml(), str(uci_dir), dataset, str(work_dir))
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=arguments
    )
    children_before = set(active_children())
    try:
        futures = [pool.submit(_fit_split, split) for split in pending]
        done: Iterable[Future[dict]] = as_completed(futures)
        if progress:
            from rich.progress import track

            done = track(
                done,
                total=len(futures),
                description=f"uci-{dataset}-{spec.inference.method}",
                console=None,
            )
        for future in done:
            future.result()  # a failed split stops the bench with its error
    except BaseException:
        # Stop at once: the running fits are abandoned (finished splits are kept), not waited for.
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in set(active_children()) - children_before:
            worker.terminate()
        pool.shutdown()  # returns at once now; releases the pool's pipes and locks
        raise
    pool.shutdown()


_WORKER: dict = {}


def _init_worker(parent: int, spec_toml: str, uci_dir: str, dataset: str, work_dir: str) -> None:
    """Per process, once: the data and spec, and quiet logs."""
    import logging

    die_with_parent(parent)  # a bench killed outright leaves no worker running on

    import pymc  # noqa: F401  (sets its logger on import)

    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", DataWarning)  # constant columns are part of the protocol
    warnings.simplefilter("ignore", RuntimeWarning)
    _WORKER.update(
        spec=Spec.model_validate(tomllib.loads(spec_toml)),
        data=load_uci(uci_dir, dataset),
        uci_dir=uci_dir,
        dataset=dataset,
        work_dir=Path(work_dir),
        refitter=Refitter(),  # compiled on the first split, reused for the rest
    )


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


def _fit_split(split: int) -> dict:
    spec: Spec = _WORKER["spec"]
    # Each split has its own seed, so splits are independent replications.
    spec = spec.with_overrides(inference={"seed": spec.inference.seed + split})
    train, test = split_rows(_WORKER["uci_dir"], _WORKER["dataset"], split)
    started = time.perf_counter()
    fitted, metrics = fit_split(spec, _WORKER["data"], train, test, refitter=_WORKER["refitter"])
    scores = metrics.test
    assert scores is not None  # every UCI split has test rows
    result = (
        {
            "split": split,
            "rmse": scores.rmse,
            "test_ll": scores.lpd,
            "seconds": round(time.perf_counter() - started, 2),
            "coverage_90": scores.coverage_90,
            "n_train": metrics.train.n,
            "n_test": scores.n,
        }
        | _learned_scales(fitted.posterior)
        | _divergences(fitted.trace)
        | _diagnosis(fitted)
    )
    replace_file(_WORKER["work_dir"] / f"split-{split}.json", jsontext.dumps(result))
    return result
