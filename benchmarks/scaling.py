"""How `pmbnn bench uci` scales with Dask worker processes on this machine.

    python benchmarks/scaling.py                       # about 15 minutes on 2 cores
    python benchmarks/scaling.py --workers 1,2 --splits 0-3   # a quicker look

The 20-split ADVI bench of yacht (the protocol's spec, uci-1x50) run from scratch on a
LocalCluster of 1, 2 and 4 single-threaded worker processes: wall time (cluster start, each
worker's compile and every fit), the speed-up over one worker, and whether every worker count
gave the same numbers (each split is a pure function of its seed). Needs the UCI data
($PMBNN_UCI_DIR or ../shared/data/uci).

Writes reports/benchmarks/scaling.json (numbers, date, machine) and scaling.png, the figure
the README shows beside batch prediction's (benchmarks/batch_predict.py, if it has run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pmbnn.bench import UCI_SPEC, make_bench, run_bench  # noqa: E402
from pmbnn.spec import load_builtin_spec  # noqa: E402

RESULTS = ROOT / "reports" / "benchmarks"
OUT = RESULTS / "scaling.json"
FIGURE = RESULTS / "scaling.png"
DATASET = "yacht"


def measure(uci_dir: Path, workers: list[int], splits: str) -> dict:
    spec = load_builtin_spec(UCI_SPEC)
    runs = []
    for count in workers:
        with tempfile.TemporaryDirectory() as out:
            bench = make_bench(DATASET, "advi", splits, uci_dir, Path(out), spec=spec)
            started = time.perf_counter()
            summary = run_bench(bench, workers=count)
            wall = time.perf_counter() - started
        runs.append({
            "workers": count,
            "wall_s": round(wall, 1),
            "fit_s_total": round(summary["seconds_total"], 1),
            "test_ll_mean": summary["test_ll_mean"],
            "rmse_mean": summary["rmse_mean"],
        })  # fmt: skip
        print(f"{count} worker(s): {wall:.0f} s wall", flush=True)
    one = runs[0]["wall_s"]
    for run in runs:
        run["speedup"] = round(one / run["wall_s"], 2)
    return {
        "dataset": DATASET,
        "method": "advi",
        "splits": splits,
        "spec": UCI_SPEC,
        "runs": runs,
        "same_numbers": len({(r["test_ll_mean"], r["rmse_mean"]) for r in runs}) == 1,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }


def figure(scaling: dict, batch: dict | None) -> None:
    """Bench wall time by workers, and (when measured) batch prediction time by rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if batch else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), squeeze=False)
    runs = scaling["runs"]
    ax = axes[0][0]
    ax.bar([str(r["workers"]) for r in runs], [r["wall_s"] / 60 for r in runs], color="#4477aa")
    for i, r in enumerate(runs):
        ax.annotate(f"x{r['speedup']:.2f}", (i, r["wall_s"] / 60), ha="center", va="bottom")
    ax.set_xlabel("Dask worker processes")
    ax.set_ylabel("wall time (min)")
    ax.set_title(f"bench uci {scaling['dataset']} ADVI, splits {scaling['splits']}", fontsize=9)
    if batch:
        ax = axes[0][1]
        rows = [r["rows"] for r in batch["runs"]]
        ax.loglog(rows, [r["wall_s"] for r in batch["runs"]], "o-", color="#cc6677")
        ax.set_xlabel("rows on disk (Parquet)")
        ax.set_ylabel("wall time (s)")
        ax.set_title("predict to Parquet, out of core", fontsize=9)
    fig.suptitle(f"{scaling['date']}, {scaling['machine']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--splits", default="0-19")
    parser.add_argument("--figure-only", action="store_true", help="redraw from the JSON")
    args = parser.parse_args(argv)
    if args.figure_only:
        scaling = json.loads(OUT.read_text())
    else:
        uci_dir = Path(os.environ.get("PMBNN_UCI_DIR", ROOT.parent / "shared" / "data" / "uci"))
        workers = [int(w) for w in args.workers.split(",")]
        scaling = measure(uci_dir, workers, args.splits)
        OUT.write_text(json.dumps(scaling, indent=2) + "\n")
    batch_file = RESULTS / "batch_predict.json"
    figure(scaling, json.loads(batch_file.read_text()) if batch_file.is_file() else None)
    print(json.dumps(scaling["runs"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
