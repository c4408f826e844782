"""The command line's grammar: commands, arguments and their help (argparse), nothing run.

Exit codes: 0 done; 1 only for ``diagnose --strict`` finding a FAIL; 2 bad input of any kind
(a damaged run, an unwritable or protected --out, a busy output included), with one line on
stderr and nothing written; 130 / 143 interrupted by SIGINT / SIGTERM, nothing written; 3 an
internal error (a bug in pmbnn).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path

from pmbnn.errors import PmbnnError

BUILTIN_EXAMPLE = "sine-gap"
UCI_SPEC = "uci-1x50"
USAGE_ERROR = 2
METHODS = ["advi", "fullrank_advi", "nuts"]
SAMPLERS = ["auto", "pymc", "nutpie", "numpyro", "blackjax"]  # pmbnn.spec.Sampler
FAMILIES = [
    "gaussian",
    "student_t",
    "heteroscedastic_gaussian",
    "lognormal",
    "poisson",
    "bernoulli",
    "categorical",
]  # pmbnn.spec.Family; fmt: skip
CHECK_FAILED = 1  # diagnose --strict: the run was read, and a check failed
INTERNAL_ERROR = 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr rather than the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pmbnn",
        description="Bayesian neural networks as PyMC models. With no command: "
        "fit the built-in sine-gap example.",
        epilog="exit codes: 0 done; 1 'diagnose --strict' found a FAIL; 2 bad input (a damaged "
        "run, a busy or protected --out included), nothing written; 130 / 143 interrupted by "
        "Ctrl-C / SIGTERM, nothing written; 3 internal error (a bug in pmbnn)",
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    fit = commands.add_parser("fit", help="fit a BNN spec and write a run folder")
    _add_spec_and_data(fit)
    fit.add_argument("--method", choices=METHODS)
    fit.add_argument(
        "--sampler", choices=SAMPLERS, help="NUTS implementation ([inference].sampler)"
    )
    fit.add_argument(
        "--backend",
        choices=["auto", "numba", "jax"],
        help="what PyTensor compiles ADVI, nutpie and prediction to (overrides "
        "[inference].backend; auto: JAX if installed)",
    )
    fit.add_argument(
        "--device",
        choices=["auto", "cpu", "gpu"],
        help="where JAX-compiled fitting runs (overrides [inference].device; auto: the device "
        "with the faster gradient for this model)",
    )
    fit.add_argument(
        "--batch-size",
        type=int,
        help="ADVI on random minibatches of this many rows (overrides [inference].batch_size)",
    )
    fit.add_argument("--seed", type=int, help="random seed (overrides [inference].seed)")
    fit.add_argument(
        "--out",
        type=Path,
        help="run folder to write (default: runs/<data>[-<spec>]-<method>-<time>)",
    )
    fit.add_argument("--force", action="store_true", help="replace --out if pmbnn wrote it")

    predict = commands.add_parser("predict", help="predict new inputs with a fitted run")
    predict.add_argument("run", type=Path, help="a run folder written by 'pmbnn fit'")
    predict.add_argument(
        "--data",
        required=True,
        help="table (.csv, .tsv, .parquet, .npz) with the run's inputs, or a folder of Parquet "
        "part files (a dataset larger than memory)",
    )
    predict.add_argument(
        "--out",
        type=Path,
        help="CSV file to write (default: standard output); NAME.parquet: predict out of core "
        "on a Dask cluster into a folder of Parquet part files, rows in the input's order",
    )
    predict.add_argument("--force", action="store_true", help="replace --out if pmbnn wrote it")
    _add_cluster_options(predict)

    evaluate = commands.add_parser(
        "evaluate", help="score a fitted run on a table with the target (RMSE, LPD, coverage)"
    )
    evaluate.add_argument("run", type=Path, help="a run folder written by 'pmbnn fit'")
    evaluate.add_argument(
        "--data", required=True, help="table with the run's inputs and its target column"
    )
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")

    diagnose = commands.add_parser(
        "diagnose", help="check whether inference worked (function-space convergence, VI quality)"
    )
    diagnose.add_argument("run", type=Path, help="a run folder written by 'pmbnn fit'")
    diagnose.add_argument(
        "--strict", action="store_true", help=f"exit with {CHECK_FAILED} if any check FAILs"
    )
    diagnose.add_argument("--json", action="store_true", help="print the checks as JSON")

    report = commands.add_parser("report", help="write an HTML report (and report.json) of a run")
    report.add_argument("run", type=Path, help="a run folder written by 'pmbnn fit'")
    report.add_argument(
        "--test-data",
        help="table with the inputs and target to check calibration on (default: the run's "
        "held-out rows)",
    )
    report.add_argument(
        "--out", type=Path, help="folder to write (default: reports/<run folder name>)"
    )
    report.add_argument("--force", action="store_true", help="replace --out if pmbnn wrote it")

    compare = commands.add_parser(
        "compare", help="compare runs fitted on the same rows (PSIS-LOO, stacking weights)"
    )
    compare.add_argument("runs", nargs="+", type=Path, help="two or more run folders")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument(
        "--out", type=Path, help="also write an HTML page (and compare.json) to this folder"
    )
    compare.add_argument("--force", action="store_true", help="replace --out if pmbnn wrote it")

    prior = commands.add_parser(
        "prior", help="draw from a spec's prior on its data (no fit) and write an HTML page"
    )
    _add_spec_and_data(prior)
    prior.add_argument("--seed", type=int, help="random seed (overrides [inference].seed)")
    prior.add_argument("--draws", type=int, help="prior draws (default 500)")
    prior.add_argument(
        "--out", type=Path, help="folder to write (default: reports/prior-<data>[-<spec>])"
    )
    prior.add_argument("--force", action="store_true", help="replace --out if pmbnn wrote it")

    sweep = commands.add_parser(
        "sweep",
        help="fit a grid of spec settings x seeds, cross-validated, and report the best",
    )
    _add_spec_and_data(sweep)
    sweep.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        required=True,
        metavar="KEY=V1,V2",
        help="spec keys and their values, e.g. prior.weight_scale=0.5,1,2 "
        "network.hidden=[50],[100]; every combination is fitted",
    )
    sweep.add_argument("--seeds", help="fit seeds, e.g. 0-2 or 1,5 (default: the spec's seed)")
    sweep.add_argument(
        "--folds",
        type=int,
        default=5,
        help="K-fold cross-validation over all rows (default 5); 1: score on the spec's "
        "held-out rows (--test-fraction / --test-data) instead",
    )
    sweep.add_argument(
        "--out", type=Path, help="results folder (default: reports/sweep-<data>[-<spec>])"
    )
    _add_cluster_options(sweep)

    bench = commands.add_parser("bench", help="run a standard benchmark")
    suites = bench.add_subparsers(dest="suite", required=True, parser_class=_Parser)
    uci = suites.add_parser("uci", help="the UCI regression protocol over its standard splits")
    uci.add_argument("--dataset", required=True, help="dataset folder name, e.g. bostonHousing")
    uci.add_argument("--splits", help="e.g. 0-19, 3 or 0-4,10 (default: every split)")
    uci.add_argument(
        "--method",
        choices=METHODS,
        help="default: the spec's (uci-1x50: advi, uci-1x50-nuts: nuts)",
    )
    uci.add_argument(
        "--sampler", choices=SAMPLERS, help="NUTS implementation (default: the spec's)"
    )
    uci.add_argument(
        "--spec",
        help=f"spec file or built-in name to use instead of {UCI_SPEC} (same network)",
    )
    uci.add_argument(
        "--uci-dir",
        type=Path,
        default=os.environ.get("PMBNN_UCI_DIR"),
        help="folder holding the datasets in the standard layout (default: $PMBNN_UCI_DIR)",
    )
    uci.add_argument("--out", type=Path, default=Path("reports/benchmarks"), help="results folder")
    _add_cluster_options(uci)
    return parser


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where the work runs: a Dask cluster (bench, sweep, out-of-core predict)."""
    parser.add_argument(
        "--scheduler",
        help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes of the local cluster, not with --scheduler (default: one per "
        "usable core; for NUTS fits, one per `chains` cores)",
    )


def _add_spec_and_data(parser: argparse.ArgumentParser) -> None:
    """The spec argument and the options that override its [data] section (fit, prior and
    sweep)."""
    parser.add_argument(
        "spec",
        nargs="?",
        help="a TOML spec, or a built-in one by name (sine-gap, uci-1x50, ...); default: the "
        "sine-gap example without --data, pmbnn's defaults with it",
    )
    parser.add_argument(
        "--data", help="table to fit: .csv, .tsv, .parquet or .npz (overrides [data].path)"
    )
    parser.add_argument("--target", help="target column of --data (overrides [data].target)")
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        help="likelihood of the target (overrides [likelihood].family): gaussian, student_t, "
        "heteroscedastic_gaussian, lognormal (positive, skewed), poisson (counts), bernoulli "
        "(two classes), categorical (class labels)",
    )
    parser.add_argument(
        "--features", help="comma-separated input columns (default: all but the target)"
    )
    parser.add_argument(
        "--dropna", action="store_true", help="drop rows with missing or infinite values"
    )
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument(
        "--test-fraction",
        type=float,
        help="random share of rows held out for test metrics; 0: none (overrides "
        "[data].test_fraction)",
    )
    held_out.add_argument(
        "--test-data", help="a table of held-out rows to score instead (sets [data].test_path)"
    )


def parse_ranges(
    text: str,
    option: str,
    example: str,
    largest: int,
    beyond: Callable[[int], str],
    most: int | None = None,
) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] for an option such as --splits or --seeds. `beyond(n)` names
    the problem with n, the first number past `largest`; bounds and the count (`most`) are
    checked before a range is built, so a typo such as 0-4000000000 fails at once."""
    numbers: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise PmbnnError(f"cannot read {option} {text!r}; write e.g. {example}")
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high:
            raise PmbnnError(f"{option} {part.strip()} counts down; write {high}-{low}")
        if high > largest:
            raise PmbnnError(beyond(max(low, largest + 1)))
        if most is not None and len(numbers) + high - low + 1 > most:
            raise PmbnnError(f"{option} {text} gives more than {most}; give fewer")
        numbers.update(range(low, high + 1))
    return sorted(numbers)
