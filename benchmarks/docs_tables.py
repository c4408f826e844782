"""The tables in docs/ that quote benchmark results, generated from reports/benchmarks/*.json.

    python benchmarks/docs_tables.py          # rewrite every generated table in docs/*.md
    python benchmarks/docs_tables.py --check  # exit 1 naming any table that is out of date

A generated table sits between ``<!-- table: NAME -->`` and ``<!-- end table -->`` in a docs
page; everything else on the page is prose. The test suite runs ``--check``, so a table can
never disagree with the result files it quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pmbnn.uci import published  # noqa: E402

RESULTS = ROOT / "reports" / "benchmarks"
DOCS = ROOT / "docs"
DATASETS = ("bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
            "wine-quality-red", "yacht")  # fmt: skip
FIXED = RESULTS / "fixed-prior"  # results with the fixed prior, the default before issue 14
WIDE = RESULTS / "wide-prior"  # the fixed prior at twice the scale
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def _uci(folder: Path, method: str) -> dict[str, dict]:
    found = {}
    for dataset in DATASETS:
        path = folder / f"uci-{dataset}-{method}.json"
        if path.is_file():
            found[dataset] = json.loads(path.read_text())
    return found


def _mean_se(mean: float, se: float | None, decimals: int = 3) -> str:
    return f"{mean:.{decimals}f} +- {se:.{decimals}f}" if se is not None else f"{mean:.{decimals}f}"


def _measured(mean: float, se: float | None) -> str:
    """A figure pmbnn measured: three significant digits where three decimals would show
    0.000 (kin8nm's and naval's RMSE); published figures keep the precision they were given."""
    scale = max(abs(mean), se or 0.0)
    decimals = max(3, 2 - math.floor(math.log10(scale))) if scale else 3
    return _mean_se(mean, se, decimals)


def _minutes(summary: dict) -> str:
    return f"{summary['seconds_total'] / 60:.0f} min"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _uci_table(method: str, label: str, dropout_rmse: bool) -> str:
    """One row per dataset: pmbnn's RMSE and test LL beside MC dropout's published ones."""
    rows = []
    for dataset, s in _uci(FIXED, method).items():
        dropout = s["published"]["mc_dropout"]
        row = [dataset, str(len(s["splits"])), _mean_se(s["rmse_mean"], s["rmse_se"]),
               _mean_se(s["test_ll_mean"], s["test_ll_se"])]  # fmt: skip
        if dropout_rmse:
            row.append(_mean_se(dropout["rmse"], dropout["rmse_se"]))
        rows.append([*row, _mean_se(dropout["test_ll"], dropout["test_ll_se"]), _minutes(s)])
    header = ["dataset", "splits", f"{label} RMSE", f"{label} test LL"]
    header += ["MC dropout RMSE"] if dropout_rmse else []
    return _markdown([*header, "MC dropout test LL", "fit time"], rows)


def uci_advi() -> str:
    return _uci_table("advi", "ADVI", dropout_rmse=True)


def uci_nuts() -> str:
    return _uci_table("nuts", "NUTS", dropout_rmse=False)


def uci_nuts_wide() -> str:
    default = _uci(FIXED, "nuts")
    rows = []
    for dataset, s in _uci(WIDE, "nuts").items():
        dropout = s["published"]["mc_dropout"]
        same = {r["split"]: r["test_ll"] for r in default.get(dataset, {}).get("splits", [])}
        splits = [r["split"] for r in s["splits"]]
        compared = (
            f"{sum(same[k] for k in splits) / len(splits):.3f}"
            if all(k in same for k in splits)
            else "-"
        )
        rows.append([dataset, str(len(splits)), _mean_se(s["rmse_mean"], s["rmse_se"]),
                     _mean_se(s["test_ll_mean"], s["test_ll_se"]), compared,
                     _mean_se(dropout["test_ll"], dropout["test_ll_se"]), _minutes(s)])  # fmt: skip
    header = ["dataset", "splits", "wide prior: RMSE", "wide prior: test LL",
              "fixed prior: test LL (same splits)", "MC dropout test LL", "fit time"]  # fmt: skip
    return _markdown(header, rows)


def prior_predictive() -> str:
    """Per dataset and prior: the share of prior draws of f flatter than the observed y."""
    record = json.loads((RESULTS / "prior_predictive.json").read_text())
    results = record["results"]
    priors = list(next(iter(results.values())))

    def cell(m: dict) -> str:
        return f"{m['q05']:.2g} - {m['q95']:.2g} ({m['below_observed']:.0%})"

    rows = [
        [dataset, f"{by_prior[priors[0]]['observed_sd']:.3g}"] + [cell(by_prior[p]) for p in priors]
        for dataset, by_prior in results.items()
    ]
    stamp = (
        f"Measured {record['date'][:10]} on {record['machine']['platform']}; split 0, "
        f"{record['draws']} prior draws; from reports/benchmarks/prior_predictive.json.\n\n"
    )
    return stamp + _markdown(["dataset", "observed sd of y", *priors], rows)


def _published_cell(entry: dict, key: str) -> str:
    return _mean_se(entry[key], entry.get(f"{key}_se"))


def _uci_matrix(key: str, se_key: str) -> str:
    """Dataset x method: pmbnn's defaults and fixed priors, then every published method."""
    ours = {
        "NUTS, learned scale (default)": _uci(RESULTS, "nuts"),
        "ADVI, learned scale (default)": _uci(RESULTS, "advi"),
        "NUTS, fixed prior sd 1": _uci(FIXED, "nuts"),
        "NUTS, fixed prior sd 2": _uci(WIDE, "nuts"),
        "ADVI, fixed prior sd 1": _uci(FIXED, "advi"),
    }
    methods = published()
    rows = []
    for dataset in DATASETS:
        row = [dataset]
        for results in ours.values():
            s = results.get(dataset)
            row.append(
                f"{_measured(s[f'{key}_mean'], s[se_key])} ({len(s['splits'])})" if s else "-"
            )
        row += [_published_cell(m["results"][dataset], key) if dataset in m["results"] else "-"
                for m in methods.values()]  # fmt: skip
        rows.append(row)
    return _markdown(["dataset", *ours, *(m["method"] for m in methods.values())], rows)


def uci_test_ll() -> str:
    return _uci_matrix("test_ll", "test_ll_se")


def uci_rmse() -> str:
    return _uci_matrix("rmse", "rmse_se")


def uci_targets() -> str:
    """pmbnn NUTS with the default prior against MC dropout (grid re-run) and the best
    published test LL, differences beyond two standard errors called, and pooled coverage."""
    rows = []
    for dataset, s in _uci(RESULTS, "nuts").items():
        published = s["published"]
        best = max(published, key=lambda k: published[k]["test_ll"])
        row = [dataset, str(len(s["splits"])), _mean_se(s["test_ll_mean"], s["test_ll_se"])]
        for entry in (published["mc_dropout"], published[best]):
            row.append(f"{_versus(s, entry)} vs {entry['test_ll']:.3f} ({entry['method']})")
        verdicts = [r.get("verdict", "-") for r in s["splits"]]
        counts = ", ".join(
            f"{verdicts.count(v)} {v}" for v in ("OK", "WARN", "FAIL") if v in verdicts
        )
        row += [f"{s['coverage_90_pooled']:.1%}", counts or "-"]
        rows.append(row)
    header = ["dataset", "splits", "NUTS test LL", "vs MC dropout (grid re-run)",
              "vs best published", "90% coverage (pooled)", "diagnose verdicts"]  # fmt: skip
    return _markdown(header, rows)


def _paired(ours: dict, other: dict) -> str:
    """Mean over the splits both ran of ours minus the other's test LL, its standard error
    (sd of the differences / sqrt(n): the splits' own difficulty cancels), and the call."""
    theirs = {r["split"]: r["test_ll"] for r in other["splits"]}
    differences = [
        r["test_ll"] - theirs[r["split"]] for r in ours["splits"] if r["split"] in theirs
    ]
    n = len(differences)
    if n < 2:
        return "-"
    mean = sum(differences) / n
    se = (sum((d - mean) ** 2 for d in differences) / (n - 1) / n) ** 0.5
    word = ("better" if mean > 0 else "worse") if abs(mean) > 2 * se else "within 2 SE"
    wins = sum(d > 0 for d in differences)
    return f"{mean:+.3f} +- {se:.3f}, {word} ({wins} of {n})"


def uci_paired() -> str:
    """pmbnn's variants against each other on the same splits: paired differences."""
    pairs = {
        "NUTS default - NUTS fixed prior sd 1": (_uci(RESULTS, "nuts"), _uci(FIXED, "nuts")),
        "NUTS default - NUTS fixed prior sd 2": (_uci(RESULTS, "nuts"), _uci(WIDE, "nuts")),
        "ADVI default - ADVI fixed prior sd 1": (_uci(RESULTS, "advi"), _uci(FIXED, "advi")),
        "NUTS default - ADVI default": (_uci(RESULTS, "nuts"), _uci(RESULTS, "advi")),
    }
    rows = []
    for dataset in DATASETS:
        cells = [
            _paired(ours[dataset], other[dataset]) if dataset in ours and dataset in other else "-"
            for ours, other in pairs.values()
        ]
        if any(cell != "-" for cell in cells):
            rows.append([dataset, *cells])
    return _markdown(["dataset", *pairs], rows)


def _versus(summary: dict, entry: dict) -> str:
    """pmbnn's minus the published test LL, and whether it exceeds 2 combined SEs."""
    difference = summary["test_ll_mean"] - entry["test_ll"]
    combined = (summary["test_ll_se"] or 0.0) ** 2 + (entry.get("test_ll_se") or 0.0) ** 2
    beyond = abs(difference) > 2 * combined**0.5
    word = ("better" if difference > 0 else "worse") if beyond else "within 2 SE"
    return f"{difference:+.3f}, {word},"


def perf() -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from perf import format_table

    record = json.loads((RESULTS / "perf.json").read_text())
    machine = record["machine"]
    stamp = (
        f"Measured {record['date'][:10]} ({record['mode']} run) on {machine['platform']}, "
        f"{machine['cpus']} CPUs; from reports/benchmarks/perf.json.\n\n"
    )
    return (
        stamp
        + "```\n"
        + format_table(
            record["results"], record["ratios"], record["settings"], record["targets"]
        ).rstrip()
        + "\n```\n"
    )


def run_io() -> str:
    record = json.loads((RESULTS / "run_io.json").read_text())
    r, ratios = record["results"], record["ratios"]
    rows = [
        ["save_run (reserve, serialize, fsync, checksums, rename)", f"{r['save_s']:.3f} s",
         f"{r['plain_save_s']:.3f} s", f"{ratios['save_ratio_vs_plain_write']:.2f}"],
        ["load_run (checksums, cross-checks, read)", f"{r['load_s']:.3f} s",
         f"{r['plain_load_s']:.3f} s", f"{ratios['load_ratio_vs_plain_read']:.2f}"],
        ["of which the checksums", f"{r['verify_s']:.3f} s", "", ""],
    ]  # fmt: skip
    stamp = (
        f"Measured {record['date'][:10]} on {record['machine']['platform']}, "
        f"{record['machine']['cpus']} CPUs; a {r['trace_mb']:.0f} MB run; from "
        "reports/benchmarks/run_io.json.\n\n"
    )
    return stamp + _markdown(["", "pmbnn", "plain xarray / json", "ratio"], rows)


def scaling() -> str:
    """benchmarks/scaling.py: the bench's wall time by Dask worker processes."""
    result = json.loads((RESULTS / "scaling.json").read_text())
    rows = [[str(r["workers"]), f"{r['wall_s'] / 60:.1f} min", f"{r['fit_s_total'] / 60:.1f} min",
             f"{r['speedup']:.2f}x", f"{r['test_ll_mean']:.4f}"]
            for r in result["runs"]]  # fmt: skip
    same = "identical" if result["same_numbers"] else "NOT identical"
    return (
        _markdown(["workers", "wall time", "sum of fit times", "speed-up", "test LL"], rows)
        + f"\n{result['dataset']}, {result['method']}, splits {result['splits']}; numbers {same} "
        f"across worker counts; {result['date']}, {result['machine']}.\n"
    )


def batch_predict() -> str:
    """benchmarks/batch_predict.py: out-of-core prediction by rows on disk."""
    header = ["rows", "parts", "wall time", "rows/s", "client memory", "largest worker"]
    result = json.loads((RESULTS / "batch_predict.json").read_text())
    rows = [[f"{r['rows']:,}", str(r["parts"]), f"{r['wall_s']:.0f} s",
             f"{r['rows_per_second']:,.0f}", f"{r['client_peak_rss_mb']:.0f} MB",
             f"{r['largest_worker_rss_mb']:.0f} MB"]
            for r in result["runs"]]  # fmt: skip
    base, machine = result["in_memory_baseline"], result["machine"]
    return (
        _markdown(header, rows)
        + f"\nIn memory, one process, {base['rows']:,} rows: {base['rows_per_second']:,.0f} "
        f"rows/s. Run: {result['run']['spec']} by ADVI, {result['run']['draws']} draws; "
        f"{result['date'][:10]}, {machine['processor']}, {machine['cpus']} cores.\n"
    )


TABLES: dict[str, Callable[[], str]] = {
    "prior-predictive": prior_predictive,
    "uci-test-ll": uci_test_ll,
    "uci-rmse": uci_rmse,
    "uci-targets": uci_targets,
    "uci-paired": uci_paired,
    "uci-advi": uci_advi,
    "uci-nuts": uci_nuts,
    "uci-nuts-wide": uci_nuts_wide,
    "perf": perf,
    "run-io": run_io,
    "scaling": scaling,
    "batch-predict": batch_predict,
}


def render(text: str) -> str:
    """The page with every generated table rebuilt from the result files."""

    def rebuild(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        return match.group(1) + TABLES[name]() + match.group(4)

    return BLOCK.sub(rebuild, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale tables, change nothing")
    args = parser.parse_args(argv)
    stale = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        rendered = render(text)
        if rendered != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(rendered)
    if args.check and stale:
        print(f"out of date: {', '.join(map(str, stale))}; run python benchmarks/docs_tables.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
