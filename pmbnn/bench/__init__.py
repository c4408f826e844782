"""`pmbnn bench uci`: the standard UCI protocol over many splits, in parallel, resumable.

`protocol` decides what runs and keeps the work folder, `workers` fits splits on a Dask
cluster (`pmbnn.cluster`), `results` summarizes and renders.
"""

from pmbnn.bench.protocol import UCI_SPEC, UciBench, make_bench, parse_splits, run_bench
from pmbnn.bench.results import markdown, print_summary, summarize

__all__ = [
    "UCI_SPEC",
    "UciBench",
    "make_bench",
    "markdown",
    "parse_splits",
    "print_summary",
    "run_bench",
    "summarize",
]
