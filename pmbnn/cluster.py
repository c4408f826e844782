"""Where many fits run: a Dask cluster, a `LocalCluster` sized to this machine by default.

Every many-fit command (`bench uci`, `sweep`) hands its fits here as `FitTask`s. A task is a
pure function of its spec and rows: the worker fits and returns a small record, the client
writes it atomically as it arrives (no shared file system needed), so a task Dask retries
after losing a worker, or a command run again, cannot duplicate or lose a result. Each worker
process keeps the models it compiled (`Refitter`) for the tasks that follow.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pmbnn.cores import usable_cores
from pmbnn.data import Dataset
from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.evaluation import Metrics
from pmbnn.fitted import FittedBnn
from pmbnn.interrupts import die_with_parent
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.spec import Spec

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 5  # an unreachable scheduler fails in seconds, not after Dask's 30
SCHEDULER_SETTING = "scheduler-address"  # Dask's own: DASK_SCHEDULER_ADDRESS in the environment
MODELS_PER_WORKER = 4  # compiled models a worker keeps (a sweep's grid points come and go)

Recorder = Callable[[FittedBnn, Metrics], dict[str, Any]]


@dataclass(frozen=True)
class FitTask:
    """One fit: `spec` on the rows `train` of the shared data, scored on `test`."""

    name: str  # e.g. "split-3": the result file's stem, and the Dask key's
    spec: Spec
    train: np.ndarray
    test: np.ndarray


def scheduler_address(scheduler: str | None) -> str | None:
    """The running cluster to use: `scheduler`, else Dask's configured scheduler-address."""
    import dask

    return scheduler or dask.config.get(SCHEDULER_SETTING, None)


def check_workers(scheduler: str | None, workers: int | None) -> None:
    """--workers sizes a local cluster: at least 1, and never silently ignored for a running
    cluster, whose workers are its own."""
    if workers is None:
        return
    if workers < 1:
        raise PmbnnError("--workers must be at least 1")
    address = scheduler_address(scheduler)
    if address:
        raise PmbnnError(
            f"--workers sizes a local cluster, but the work goes to the Dask scheduler at "
            f"{address}, whose workers are its own; leave out --workers"
        )


@contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the cluster at `scheduler` (else Dask's configured scheduler-address), or
    of a new `LocalCluster` of `workers` single-threaded processes, closed on the way out.

    The dashboard's address goes to stderr, where a Dask user looks for it.
    """
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    cluster = client = None
    before = set(multiprocessing.active_children())  # the caller's own, left alone
    try:
        if address:
            try:
                client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                # TypeError: a tls:// address without Dask's TLS settings
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise PmbnnError(
                    f"cannot reach the Dask scheduler at {address} ({reason}); start it ('dask "
                    "scheduler'), check the address (and distributed.comm.tls for tls://), or "
                    "leave out --scheduler to run on this machine"
                ) from None
        else:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # a fit uses its cores itself (NUTS chains, BLAS)
                processes=True,
                dashboard_address=":0",  # a free port: two commands at once do not collide
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            # A command killed outright (SIGKILL) takes its local workers with it.
            client.run(die_with_parent, os.getpid())
        if "dashboard" in client.scheduler_info().get("services", {}):
            print(f"pmbnn: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        yield client
    except BaseException:
        if not address:  # interrupted or failed, even while starting: abandon the fits at once
            children = set(multiprocessing.active_children()) - before
            for worker in children:
                worker.kill()  # rather than the nanny's graceful 4 s wait for a busy worker
            for worker in children:
                worker.join(timeout=5)
        raise
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def run_fits(
    client: Client,
    data: Dataset,
    tasks: list[FitTask],
    record: Recorder,
    on_result: Callable[[FitTask, dict[str, Any]], None],
    progress: str | None = None,
) -> None:
    """Fit every task on the cluster; `on_result` gets each record as it arrives.

    `record` (a module-level function: it travels to the workers by name) turns a fit into the
    record kept. A task that raises stops the whole command with its error; the other tasks are
    cancelled. `progress`: the description of a progress bar on the terminal, or None.
    """
    from distributed import as_completed

    token = secrets.token_hex(4)  # two commands on one scheduler never share a key
    # Sent once, as a task rather than scattered: lost with a worker, Dask recomputes it.
    shared = client.submit(_same, data, key=f"pmbnn-data-{token}")
    futures = {
        client.submit(fit_on_worker, shared, task, record, key=f"pmbnn-{task.name}-{token}"): task
        for task in tasks
    }
    done: Iterable = as_completed(futures)
    if progress:
        from rich.progress import track

        done = track(done, total=len(futures), description=progress)
    try:
        for future in done:
            on_result(futures[future], future.result())
    except BaseException:
        client.cancel(list(futures), force=True)  # stop at once; finished results are kept
        raise


def default_workers(spec: Spec, tasks: int) -> int:
    """One local worker per usable core, NUTS's chains each taking a core, never more workers
    than tasks."""
    per_fit = spec.inference.chains if spec.inference.method == "nuts" else 1
    return max(1, min(usable_cores() // per_fit, tasks))


def _same(data: Dataset) -> Dataset:
    return data


_MODELS: OrderedDict[str, Refitter] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def fit_on_worker(data: Dataset, task: FitTask, record: Recorder) -> dict[str, Any]:
    """Runs on a worker: the task's fit, with the model compiled for its spec reused."""
    _quiet_worker()
    refitter = _refitter_for(task.spec, data)
    with refitter.lock:  # a worker with several threads fits one model at a time
        fitted, metrics = fit_split(task.spec, data, task.train, task.test, refitter=refitter)
        return record(fitted, metrics)


def _refitter_for(spec: Spec, data: Dataset) -> Refitter:
    """The worker's model for this spec and data (the seed aside): compiled once, kept for the
    tasks that follow, the least recently used dropped past MODELS_PER_WORKER."""
    key = spec.with_overrides(inference={"seed": 0}).to_toml() + data.fingerprint
    with _MODELS_LOCK:
        refitter = _MODELS.pop(key, None) or Refitter()
        _MODELS[key] = refitter
        while len(_MODELS) > MODELS_PER_WORKER:
            _MODELS.popitem(last=False)
    return refitter


def _quiet_worker() -> None:
    """Workers log only errors: the command reports, and the protocol expects constant
    columns (UCI) and overflow in early optimizer steps."""
    import pymc  # noqa: F401  (sets its logger on import)

    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", DataWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
