"""Prediction over a table larger than memory: a Parquet dataset in, a Parquet dataset out.

Dask reads the input's partitions (`dask.dataframe.read_parquet`: one file, or a folder of part
files) on the workers of a cluster (`cluster.connect`); each worker loads the run once and
predicts each of its partitions exactly as `pmbnn predict` predicts a table in memory
(`FittedBnn.predict_frame`, whose fixed-size blocks make a row's numbers independent of the rows
around it: the same numbers to the bit), and writes it as one part file of a staging folder
beside the output. The folder is renamed into place when every part is written
(`files.Destination`: nothing half-written, nothing of the user's replaced). Rows keep their
order: part i of the output holds the predictions of the input's partition i, in order, under
the input's index where the input stores one.
"""

from __future__ import annotations

import os
import secrets
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pmbnn.cores import usable_cores
from pmbnn.data import numeric_columns
from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.files import Destination, OutputKind
from pmbnn.fitted import FittedBnn
from pmbnn.manifest import HIDDEN_MANIFEST, read_manifest
from pmbnn.run import load_run

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pyarrow as pa
    from distributed import Client

PREDICTIONS_DATASET = OutputKind("predictions dataset", manifest=HIDDEN_MANIFEST)
PARQUET_SUFFIXES = (".parquet", ".pq")
RUNS_PER_WORKER = 2  # loaded runs a worker keeps (each holds its draws and compiled network)


@dataclass(frozen=True)
class BatchPrediction:
    """What `predict_parquet` wrote: the folder, its rows and its part files."""

    path: Path
    rows: int
    parts: int


@dataclass(frozen=True)
class _Job:
    """What every partition's task needs, sent to the workers (small: no rows, no draws)."""

    run_dir: str
    run_checksum: str  # of the run's manifest, as the client verified it
    features: list[str]
    source: str  # --data, for messages
    schema: pa.Schema
    keep_index: bool
    digits: int


def is_out_of_core(out: str | Path | None, data: str | Path) -> bool:
    """Whether `pmbnn predict` predicts out of core: into an output named *.parquet (a folder
    of part files). Input that is a folder (a partitioned Parquet dataset) must go there."""
    parquet_out = out is not None and Path(out).suffix.lower() in PARQUET_SUFFIXES
    if Path(data).is_dir() and not parquet_out:
        raise PmbnnError(
            f"{data} is a folder (a dataset of Parquet part files): predict it out of core "
            "into a folder of part files with --out NAME.parquet"
        )
    return parquet_out


def predict_parquet(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> BatchPrediction:
    """Predict every row of a Parquet dataset with a run, out of core, into a Parquet folder.

    Parameters
    ----------
    run : path
        A run folder (``pmbnn fit``); verified here, loaded once by each worker.
    data : path
        A Parquet file, or a folder of Parquet part files (as Dask, Spark or pyarrow write
        them), holding the run's feature columns (found by name; other columns are not read).
    out : path
        The folder to write: one part file per input partition, ``part.00000.parquet`` and
        on, in the input's order, with the input's index where it stores one, and
        ``_manifest.json``. Written whole or not at all; an existing folder is replaced only
        with ``force`` and only if it is a predictions folder pmbnn wrote.
    scheduler : str, optional
        A Dask scheduler's address (else Dask's configured ``scheduler-address``, else a local
        cluster). Its workers must see `run`, `data` and `out`'s folder at the same paths.
    workers : int, optional
        Processes of the local cluster (default: one per core, at most one per partition).
    progress : bool
        Show a progress bar of the partitions on the terminal.

    Returns
    -------
    BatchPrediction
    """
    from pmbnn.cluster import check_workers, connect

    check_workers(scheduler, workers)
    run_dir = Path(run).resolve()
    fitted = load_run(run_dir)
    frames, keep_index = _open_dataset(Path(data), fitted.feature_names)
    n_workers = workers or max(1, min(usable_cores(), frames.npartitions))
    # Reserved before any prediction: a busy, protected or unwritable --out fails now.
    with Destination(out, PREDICTIONS_DATASET, force, [data, run]) as destination:
        job = _Job(
            run_dir=str(run_dir),
            run_checksum=read_manifest(run_dir)["checksum"],
            features=fitted.feature_names,
            source=str(data),
            schema=_schema(fitted, frames, keep_index),
            keep_index=keep_index,
            digits=max(5, len(str(frames.npartitions - 1))),
        )
        rows: list[int] = []

        def fill(folder: Path) -> None:
            with connect(scheduler, n_workers) as client:
                rows.append(_predict_partitions(client, frames, job, folder, progress))

        destination.write(fill)
    return BatchPrediction(Path(out), rows[0], frames.npartitions)


def _open_dataset(path: Path, features: list[str]) -> tuple[dd.DataFrame, bool]:
    """The dataset's feature columns as a Dask DataFrame (nothing read but the files'
    footers), and whether it stores a pandas index to keep."""
    import dask.dataframe as dd
    import pyarrow.dataset as ds

    if not path.exists():
        raise PmbnnError(f"data not found: {path} (check the path given by --data)")
    if path.is_file() and path.suffix.lower() not in PARQUET_SUFFIXES:
        raise PmbnnError(
            f"out-of-core prediction reads Parquet; {path} is not a .parquet file or a folder "
            "of them: convert it, or predict it in memory with --out NAME.csv"
        )
    try:
        files = ds.dataset(str(path), format="parquet")
        index_columns = (files.schema.pandas_metadata or {}).get("index_columns", [])
    except Exception as exc:  # pyarrow's errors for a corrupt or foreign file
        raise PmbnnError(f"cannot read {path} as Parquet: {_first_line(exc)}") from None
    if not files.files:
        raise PmbnnError(f"{path} holds no Parquet files")
    if files.count_rows() == 0:  # from the footers: an empty input is a mistake, as in memory
        raise PmbnnError(f"{path} has no data rows; nothing was written")
    # A RangeIndex stored with a name (as metadata, not as a column) is more than Dask's
    # reader handles (KeyError: [nan]); the rows keep their order without it.
    named_range = [c["name"] for c in index_columns if isinstance(c, dict) and c.get("name")]
    if named_range:
        warnings.warn(
            f"{path} stores a RangeIndex named {named_range[0]!r}, which Dask cannot read; "
            "the predictions are written without it, in the rows' order",
            DataWarning,
            stacklevel=3,
        )
    try:
        frames = dd.read_parquet(str(path), index=False if named_range else None)
    except Exception as exc:
        raise PmbnnError(f"cannot read {path} as Parquet: {_first_line(exc)}") from None
    if any(name not in frames.columns for name in features):
        # The in-memory path's message, naming the missing column and the ones there are.
        numeric_columns(pd.DataFrame(columns=frames.columns), features, str(path), "predict")
    return frames[features], bool(index_columns) and not named_range


def _schema(fitted: FittedBnn, frames: dd.DataFrame, keep_index: bool) -> pa.Schema:
    """The part files' schema, from predicting one row (the training mean) as every partition
    is predicted, under an index of the input's type: every part the same, even an empty one
    (whose column of labels alone would not say what it holds)."""
    import pyarrow as pa

    example = pd.DataFrame([fitted.scaler.x_mean], columns=fitted.feature_names)
    meta = fitted.predict_frame(example)
    if keep_index:
        meta.index = frames._meta_nonempty.index[:1]  # Dask's stand-in values of that type
    return pa.Schema.from_pandas(meta, preserve_index=keep_index)


def _predict_partitions(
    client: Client, frames: dd.DataFrame, job: _Job, folder: Path, progress: bool
) -> int:
    """Predict every partition on the cluster into folder; the rows written."""
    import dask
    from distributed import as_completed

    token = secrets.token_hex(4)  # two commands on one scheduler never share a key
    tasks = [
        dask.delayed(predict_partition, pure=False)(
            part, number, job, str(folder), dask_key_name=f"pmbnn-predict-{token}-{number}"
        )
        for number, part in enumerate(frames.to_delayed())
    ]
    futures = client.compute(tasks)
    done: Iterable = as_completed(futures)
    if progress:
        from rich.progress import track

        done = track(done, total=len(futures), description="predicting partitions")
    rows = 0
    try:
        for future in done:
            rows += future.result()
    except BaseException:
        client.cancel(futures, force=True)  # stop at once; the staging folder is removed
        raise
    return rows


def predict_partition(frame: pd.DataFrame, number: int, job: _Job, folder: str) -> int:
    """Runs on a worker: predict one partition, write it as part `number` of folder; returns
    its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fitted = _worker_run(job.run_dir, job.run_checksum)
    x = numeric_columns(frame, job.features, f"partition {number} of {job.source}", "predict")
    try:
        table = fitted.predict_frame(x)
    except PmbnnError as exc:  # its row counts from the partition's first
        raise PmbnnError(f"partition {number} of {job.source}: {exc}") from None
    if job.keep_index:
        table.index = frame.index
    name = f"part.{number:0{job.digits}d}.parquet"
    arrow = pa.Table.from_pandas(table, schema=job.schema, preserve_index=job.keep_index)
    pq.write_table(arrow, Path(folder) / name)
    return len(table)


_RUNS: dict[tuple, FittedBnn] = {}
_RUNS_LOCK = threading.Lock()


def _worker_run(run_dir: str, checksum: str) -> FittedBnn:
    """The run, loaded (verified) and compiled once per worker process, for every partition
    that follows. Keyed by the folder, its manifest and its files' sizes and times: a run
    fitted again at the same path, or edited, is loaded afresh, never served stale."""
    folder = Path(run_dir)
    key = (run_dir, _manifest_checksum(folder), *_file_stamps(folder))
    if key[1] != checksum:
        raise PmbnnError(f"{run_dir} changed while predicting; run the command again")
    with _RUNS_LOCK:
        fitted = _RUNS.get(key)
        if fitted is None:
            fitted = load_run(folder)
            fitted.network  # noqa: B018  (compiled now, under the lock: once per worker)
            for stale in [k for k in _RUNS if k[0] == run_dir]:
                del _RUNS[stale]  # an earlier version of this run
            while len(_RUNS) >= RUNS_PER_WORKER:
                del _RUNS[next(iter(_RUNS))]  # the longest kept
            _RUNS[key] = fitted
    return fitted


def _manifest_checksum(folder: Path) -> str | None:
    try:
        return read_manifest(folder)["checksum"]
    except PmbnnError:
        return None


def _file_stamps(folder: Path) -> list[tuple[str, int, int]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        return [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries]
    except OSError:
        return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
