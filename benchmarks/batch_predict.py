"""Out-of-core prediction at scale: rows per second and the client's memory, 1e5 to 1e7 rows.

    python benchmarks/batch_predict.py                    # 1e5, 1e6 and 1e7 rows
    python benchmarks/batch_predict.py --rows 1e5         # a check that it runs (~1 min)

The run: the UCI protocol's network (built-in spec uci-1x50: 8 inputs, one hidden layer of 50
tanh units, learned weight scales) fitted by mean-field ADVI (ADVI_ITERATIONS steps) to the perf
workload's synthetic data (benchmarks/perf.py: 1000 rows, a smooth nonlinear target plus noise),
with `--draws` posterior draws kept (default 200). Each dataset is written to a temporary folder
part by part (PART_ROWS rows a file, each generated from its own seed), so memory stays small
while it is made, and predicted by `pmbnn.predict_parquet` on a local Dask cluster of one
single-threaded worker per core into a Parquet folder, in a fresh process of its own: its peak
memory (max RSS) is the client's alone, whatever the rows; the workers' is measured apart (the
largest of them, sampled). Wall time counts everything the command does: the cluster's start,
each worker's load and compile of the run, reading, predicting, writing, the manifest's
checksums. The in-memory path (`FittedBnn.predict_frame` in one process) on the smallest size
is the baseline, measured in the same run. Writes reports/benchmarks/batch_predict.json
(benchmarks/scaling.py draws its figure, scaling.png, from it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # pmbnn from the checkout, as the README installs it
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf import N_FEATURES, make_data  # noqa: E402
from provenance import provenance  # noqa: E402

SPEC = "uci-1x50"
ADVI_ITERATIONS = 5000
PART_ROWS = 25_000  # rows per input file (a partition of Dask's): 4 at 1e5 rows, 400 at 1e7
ROWS = "1e5,1e6,1e7"
NAMES = [f"x{i}" for i in range(N_FEATURES)]


def fit_run(work: Path, draws: int) -> Path:
    """The benchmark's run, fitted and saved under work."""
    import pandas as pd

    from pmbnn.pipeline import fit
    from pmbnn.run import save_run
    from pmbnn.spec import load_spec

    x, y = make_data(1000)
    table = work / "train.csv"
    pd.DataFrame(x, columns=NAMES).assign(y=y).to_csv(table, index=False)
    spec = load_spec(SPEC).with_overrides(
        data={"path": str(table), "target": "y"},
        inference={"iterations": ADVI_ITERATIONS, "draws": draws, "chains": 1},
    )
    fitted, metrics = fit(spec)
    return save_run(fitted, metrics, work / "run")


def write_dataset(folder: Path, rows: int) -> int:
    """`rows` rows of the features as Parquet part files, one part in memory at a time."""
    import pandas as pd

    folder.mkdir()
    starts = range(0, rows, PART_ROWS)
    for number, start in enumerate(starts):
        x, _ = make_data(min(PART_ROWS, rows - start), seed=100 + number)
        part = folder / f"part.{number:05d}.parquet"
        pd.DataFrame(x, columns=NAMES).to_parquet(part, index=False)
    return len(starts)


def measure_out_of_core(run: Path, data: Path, out: Path, workers: int | None) -> dict:
    """Runs in a fresh process: predict_parquet of data, timed, with peak memories."""
    import psutil

    from pmbnn.batch_predict import predict_parquet

    largest_worker = [0]
    stop = threading.Event()

    def sample_workers() -> None:  # the workers are grandchildren (nanny, then worker)
        me = psutil.Process()
        while not stop.wait(0.5):
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a process that just ended
                    largest_worker[0] = max(largest_worker[0], child.memory_info().rss)

    sampler = threading.Thread(target=sample_workers, daemon=True)
    sampler.start()
    clock = time.perf_counter()
    written = predict_parquet(run, data, out, workers=workers)
    seconds = time.perf_counter() - clock
    stop.set()
    sampler.join()
    return {
        "rows": written.rows,
        "parts": written.parts,
        "workers": workers or min(os.cpu_count() or 1, written.parts),
        "wall_s": seconds,
        "rows_per_second": written.rows / seconds,
        "client_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "largest_worker_rss_mb": largest_worker[0] / 2**20,
        "output_mb": sum(p.stat().st_size for p in out.iterdir()) / 1e6,
    }


def measure_in_memory(run: Path, data: Path) -> dict:
    """Runs in a fresh process: the whole table read and predicted in this one process."""
    import pandas as pd

    from pmbnn.run import load_run

    fitted = load_run(run)
    x = pd.read_parquet(data)
    fitted.predict_frame(x.iloc[:10])  # compiled before the clock starts, as a worker's is
    clock = time.perf_counter()
    table = fitted.predict_frame(x)
    seconds = time.perf_counter() - clock
    return {
        "rows": len(table),
        "wall_s": seconds,
        "rows_per_second": len(table) / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def isolated(function: Callable, *args: object) -> Any:
    """function(*args) in a fresh spawned process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=ROWS, help=f"dataset sizes (default {ROWS})")
    parser.add_argument("--draws", type=int, default=200, help="posterior draws of the run")
    parser.add_argument("--workers", type=int, help="local workers (default: one per core)")
    parser.add_argument("--work", type=Path, help="temporary folder (default: the system's)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "reports" / "benchmarks" / "batch_predict.json"
    )
    args = parser.parse_args(argv)
    sizes = [int(float(size)) for size in args.rows.split(",")]
    work = Path(tempfile.mkdtemp(prefix="pmbnn-batch-predict-", dir=args.work))
    results = []
    try:
        print(f"fitting {SPEC} by ADVI ({ADVI_ITERATIONS} steps, {args.draws} draws) ...")
        run = isolated(fit_run, work, args.draws)
        for rows in sizes:
            data = work / f"data-{rows}"
            parts = write_dataset(data, rows)
            print(f"  {rows:>10,d} rows in {parts} part files ...", end="", flush=True)
            out = work / f"predictions-{rows}.parquet"
            figures = isolated(measure_out_of_core, run, data, out, args.workers)
            results.append(figures)
            print(
                f" {figures['wall_s']:.1f} s, {figures['rows_per_second']:,.0f} rows/s, client "
                f"{figures['client_peak_rss_mb']:.0f} MB, largest worker "
                f"{figures['largest_worker_rss_mb']:.0f} MB"
            )
            if rows == min(sizes):
                baseline = isolated(measure_in_memory, run, data)
            shutil.rmtree(data)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = results[0]["rows_per_second"] / baseline["rows_per_second"]
    print(
        f"  in memory, one process, {baseline['rows']:,d} rows: "
        f"{baseline['rows_per_second']:,.0f} rows/s (out of core: {ratio:.2f}x that)"
    )
    record = provenance() | {
        "run": {
            "spec": SPEC,
            "method": "advi",
            "iterations": ADVI_ITERATIONS,
            "draws": args.draws,
            "features": N_FEATURES,
            "data": "benchmarks/perf.py make_data (synthetic)",
        },
        "part_rows": PART_ROWS,
        "runs": results,  # benchmarks/scaling.py draws wall_s against rows from these
        "in_memory_baseline": baseline,
        "ratios": {"out_of_core_rows_per_second_vs_in_memory_smallest": ratio},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
