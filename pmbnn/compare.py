"""Which of several fitted runs predicts best? PSIS-LOO compared by ArviZ, and test LPD.

Each run's PSIS-LOO is `predictive_checks.loo_data` (the report's, with the approximate-
posterior correction for VI runs); `arviz_stats.compare` turns them into differences to the
best run with the standard errors of the paired differences, and stacking weights. elpd_loo is
a sum over the training rows, so runs are compared only when they were fitted on the same rows
of the same target. When every run also holds the same test rows, their log predictive
density there is compared the same way (a sum over rows, paired differences).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
from arviz_stats.utils import ELPDData

from pmbnn.errors import PmbnnError
from pmbnn.fitted import FittedBnn
from pmbnn.pipeline import MAX_LOG_LIKELIHOOD_VALUES
from pmbnn.predictive_checks import loo_data, pareto_k_counts
from pmbnn.run import load_run
from pmbnn.trace import LOG_LIKELIHOOD, n_samples

WEIGHTS = "stacking"  # Yao et al. 2018; ArviZ's default
# Stored rows go through the run's scaling and back (and through log and exp for a lognormal
# target), so the same rows may differ in the last bits between runs of different settings.
SAME_ROWS_RTOL = 1e-9
# ArviZ's flags on the differences (compare's diag_diff), in words.
DIFFERENCE_NOTES = {
    "N < 100": "fewer than 100 training rows: read the differences' SEs as rough (ArviZ)",
    "|elpd_diff| < 4": "runs within 4 of the best predict alike, whatever the SE (ArviZ)",
}


@dataclass(frozen=True)
class TestComparison:
    """Log predictive density of each run on test rows that every run holds."""

    n: int
    pointwise: dict[str, np.ndarray]  # run -> log p(y_i | x_i, training data) per test row

    def table(self) -> pd.DataFrame:
        """Per run, best first: elpd (sum over rows), lpd (mean per row, as `evaluate`), and
        the paired difference to the best run with its standard error (ArviZ's formula for
        elpd_diff's dse: sqrt(n * variance of the pointwise differences))."""
        sums = {name: float(values.sum()) for name, values in self.pointwise.items()}
        order = sorted(sums, key=lambda name: -sums[name])
        best = self.pointwise[order[0]]
        rows = {}
        for name in order:
            diff = self.pointwise[name] - best
            rows[name] = {
                "elpd": sums[name],
                "lpd": sums[name] / self.n,
                "elpd_diff": float(diff.sum()),
                "dse": float(np.sqrt(self.n * np.var(diff))),
            }
        return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class Comparison:
    """Runs compared on the same training rows: `table` is `arviz_stats.compare`'s result,
    unrounded, best run first (rank, elpd_diff, dse, p_worse, diag_diff, diag_elpd, p, elpd,
    se, weight); `loo` each run's PSIS-LOO; `test` the test-row comparison when the runs share
    test rows, else None and `test_note` says why."""

    table: pd.DataFrame
    loo: dict[str, ELPDData]
    runs: dict[str, FittedBnn]
    paths: dict[str, str]
    test: TestComparison | None
    test_note: str | None

    @property
    def target(self) -> str:
        return next(iter(self.runs.values())).target

    @property
    def n_train(self) -> int:
        return int(next(iter(self.loo.values())).n_data_points)

    def high_k(self, name: str) -> int:
        """Training points whose Pareto k is above ArviZ's threshold for this run's draws."""
        result = self.loo[name]
        return int(np.sum(np.asarray(result.pareto_k) > result.good_k))

    def warnings(self) -> list[str]:
        """One line per run whose LOO is unreliable at some points."""
        lines = []
        for name in map(str, self.table.index):
            result, bad = self.loo[name], self.high_k(name)
            if bad:
                vi = getattr(result, "approx_posterior", False)
                why = " (a variational run: q may be far from the posterior there)" if vi else ""
                lines.append(
                    f"run {name}: {bad} of {result.n_data_points} training points "
                    f"{'has' if bad == 1 else 'have'} Pareto k above {result.good_k:.2f}{why}; "
                    "its elpd_loo may be unreliable, and "
                    "biased in its favour ('pmbnn report' shows which points)"
                )
        return lines

    def to_dict(self) -> dict:
        """Plain numbers for compare.json and --json (runs best first)."""
        runs: list[dict] = []
        for name, row in self.table.iterrows():
            name = str(name)
            result, fitted = self.loo[name], self.runs[name]
            runs.append(
                {
                    "run": name,
                    "path": self.paths[name],
                    "method": fitted.spec.inference.method,
                    "family": fitted.spec.likelihood.family,
                    "rank": int(row["rank"]),
                    "elpd_loo": float(row["elpd"]),
                    "se": float(row["se"]),
                    "p_loo": float(row["p"]),
                    "elpd_diff": float(row["elpd_diff"]),
                    "dse": float(row["dse"]),
                    "p_worse": None if np.isnan(row["p_worse"]) else float(row["p_worse"]),
                    "weight": float(row["weight"]),
                    "diag_diff": str(row["diag_diff"]),
                    "approximate_posterior_correction": bool(
                        getattr(result, "approx_posterior", False)
                    ),
                    "k_threshold": float(result.good_k),
                    "high_k": self.high_k(name),
                    "k_counts": pareto_k_counts(result),
                }
            )
        test = None
        if self.test is not None:
            table = self.test.table()
            rows = [{"run": str(name)} | row.to_dict() for name, row in table.iterrows()]
            test = {"n": self.test.n, "reference": str(table.index[0]), "runs": rows}
        flags = dict.fromkeys(run["diag_diff"] for run in runs if run["diag_diff"])
        return {
            "target": self.target,
            "n_train": self.n_train,
            "weights": WEIGHTS,
            "runs": runs,
            "test": test,
            "test_note": self.test_note,
            "notes": [DIFFERENCE_NOTES.get(flag, flag) for flag in flags],
            "warnings": self.warnings(),
        }


def compare_runs(runs: Sequence[str | Path]) -> Comparison:
    """Compare fitted runs by PSIS-LOO on their shared training rows (and by test LPD).

    Parameters
    ----------
    runs : sequence of paths
        Two or more run folders, fitted on the same training rows of the same target (any
        networks, priors, likelihood families of the same kind, and methods).

    Returns
    -------
    Comparison
        ArviZ's compare table (elpd_loo with its SE, differences to the best with theirs,
        stacking weights), each run's PSIS-LOO and Pareto k, and, when every run holds the
        same test rows, their log predictive density there; ``to_dict()`` gives plain numbers.

    Raises
    ------
    PmbnnError
        Fewer than two runs, a run given twice, a damaged run, runs of different training rows
        or targets, or a run without the stored pointwise log-likelihood.
    """
    paths = [Path(run) for run in runs]
    if len(paths) < 2:
        raise PmbnnError(f"compare needs at least two runs; got {len(paths)}")
    resolved = [path.resolve() for path in paths]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise PmbnnError(f"{paths[i]} is given twice; give each run once")
    names = [path.name for path in resolved]
    if len(set(names)) < len(names):  # folders of one name in different places
        names = [str(path) for path in paths]
    return compare_fitted(
        {name: load_run(path) for name, path in zip(names, paths, strict=True)},
        {name: str(path) for name, path in zip(names, paths, strict=True)},
    )


def compare_fitted(
    runs: Mapping[str, FittedBnn], paths: Mapping[str, str] | None = None
) -> Comparison:
    """`compare_runs` for fits already in memory, named by the keys of `runs`."""
    if len(runs) < 2:
        raise PmbnnError(f"compare needs at least two runs; got {len(runs)}")
    named = list(runs.items())
    first_name, first = named[0]
    for name, fitted in named[1:]:
        problem = _difference(first, fitted)
        if problem:
            raise PmbnnError(
                f"runs {first_name} and {name} cannot be compared: {problem}; elpd is a sum "
                "over the training rows, so it compares models only on the same rows of the "
                "same target: fit them on the same data, [data] settings and [inference].seed "
                "(the seed draws the test split)"
            )
    for name, fitted in named:
        if LOG_LIKELIHOOD not in fitted.trace.children:
            values = n_samples(fitted.posterior) * len(fitted.training_data()[1])
            raise PmbnnError(
                f"run {name} holds no pointwise log-likelihood ({values:,} values, over the "
                f"{MAX_LOG_LIKELIHOOD_VALUES:,} a run stores), so PSIS-LOO cannot be computed "
                "for it: fit it with fewer draws, or compare the runs on held-out rows with "
                "'pmbnn evaluate'"
            )
    loo: dict[str, ELPDData] = {}
    for name, fitted in named:
        result = loo_data(fitted)
        assert result is not None  # its log-likelihood is there (checked above)
        loo[name] = result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high k is in Comparison.warnings, not a warning
        table = azs.compare(loo, method=WEIGHTS, round_to="none")
    test, note = _test_comparison(runs)
    return Comparison(
        table=table,
        loo=loo,
        runs=dict(runs),
        paths=dict(paths or {name: name for name in runs}),
        test=test,
        test_note=note,
    )


def _difference(a: FittedBnn, b: FittedBnn) -> str | None:
    """What makes two runs' training rows or targets differ (None if they are the same)."""
    if a.target != b.target:
        return f"they model different targets ({a.target!r} and {b.target!r})"
    if a.family.continuous != b.family.continuous:
        return (
            f"{a.spec.likelihood.family} gives the target a density and "
            f"{b.spec.likelihood.family} a probability mass (or the other way round), whose "
            "logs are not on one scale"
        )
    if a.classes != b.classes:
        return f"they code the target's labels differently ({a.classes} and {b.classes})"
    if a.feature_names != b.feature_names:
        return (
            f"their inputs differ ({', '.join(a.feature_names)} and {', '.join(b.feature_names)})"
        )
    (xa, ya), (xb, yb) = a.training_data(), b.training_data()
    if len(ya) != len(yb):
        return f"they were fitted on different training rows ({len(ya)} and {len(yb)} rows)"
    if not (_same(xa, xb) and _same(ya, yb)):
        return f"they were fitted on different training rows ({len(ya)} each, with other values)"
    return None


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays, up to the round-off of the stored scaling."""
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return a.shape == b.shape and np.allclose(
        a, b, rtol=SAME_ROWS_RTOL, atol=SAME_ROWS_RTOL * scale
    )


def _test_comparison(runs: Mapping[str, FittedBnn]) -> tuple[TestComparison | None, str | None]:
    """The runs' log predictive density on their shared test rows, or why there is none."""
    held: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, fitted in runs.items():
        rows = fitted.test_data()
        if rows is None:
            return None, f"test LPD not compared: run {name} holds no test rows"
        held[name] = rows
    (first_name, (x, y)), *others = held.items()
    for name, (x_other, y_other) in others:
        if not (len(y) == len(y_other) and _same(x, x_other) and _same(y, y_other)):
            return None, (
                f"test LPD not compared: runs {first_name} and {name} hold different test rows "
                f"({len(y)} and {len(y_other)} rows)"
            )
    pointwise = {name: fitted.log_predictive_density(x, y) for name, fitted in runs.items()}
    return TestComparison(n=len(y), pointwise=pointwise), None
