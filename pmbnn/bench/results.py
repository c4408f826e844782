"""A bench's results: the summary over splits beside the published figures, as JSON and
Markdown, and the lines printed at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pmbnn import jsontext
from pmbnn.files import replace_file
from pmbnn.spec import Spec
from pmbnn.uci import published


def summarize(
    dataset: str, method: str, spec: Spec, results: list[dict], workers: int | None
) -> dict:
    """Mean and standard error over splits of test RMSE and log-likelihood, with the
    published figures for the dataset."""

    def mean_se(key: str) -> tuple[float, float | None]:
        values = np.array([r[key] for r in results])
        se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        return float(values.mean()), se  # no standard error from one split

    rmse_mean, rmse_se = mean_se("rmse")
    ll_mean, ll_se = mean_se("test_ll")
    comparisons = {
        key: entry["results"][dataset] | {"method": entry["method"],
                                                "citation": entry["citation"]}
        for key, entry in published().items()
        if dataset in entry["results"]
    }  # fmt: skip
    return {
        "dataset": dataset,
        "method": method,
        "splits": results,
        "rmse_mean": rmse_mean,
        "rmse_se": rmse_se,
        "test_ll_mean": ll_mean,
        "test_ll_se": ll_se,
        # Share of all test points (pooled over splits) inside their central 90% interval.
        "coverage_90_pooled": float(
            sum(r["coverage_90"] * r["n_test"] for r in results) / sum(r["n_test"] for r in results)
        ),
        "seconds_total": float(sum(r["seconds"] for r in results)),
        "workers": workers,
        "spec": spec.model_dump(),
        "published": comparisons,
    }


def write_results(out_dir: Path, name: str, summary: dict) -> None:
    for suffix, text in ((".json", jsontext.dumps(summary)), (".md", markdown(summary))):
        replace_file(out_dir / f"{name}{suffix}", text)


def comparison_table(summary: dict) -> list[tuple[str, str, str, str]]:
    """(who, test RMSE, test log-likelihood, how pmbnn's test LL compares) rows: this run,
    then each published method. A difference counts only beyond two standard errors of the
    difference (both methods' errors combined; a figure published without one adds none)."""
    n = len(summary["splits"])
    rows = [
        (
            f"pmbnn {summary['method']} ({n} split{'s' if n != 1 else ''})",
            _mean_se(summary["rmse_mean"], summary["rmse_se"]),
            _mean_se(summary["test_ll_mean"], summary["test_ll_se"]),
            "",
        )
    ]
    best = best_published(summary)
    for key, entry in summary["published"].items():
        marker = ", best" if key == best else ""
        rows.append(
            (
                f"{entry['method']} (published{marker})",
                _mean_se(entry["rmse"], entry.get("rmse_se")),
                _mean_se(entry["test_ll"], entry.get("test_ll_se")),
                _versus(summary["test_ll_mean"], summary["test_ll_se"], entry),
            )
        )
    return rows


def best_published(summary: dict) -> str | None:
    """The key of the published method with the highest test log-likelihood on the dataset."""
    published = summary["published"]
    return max(published, key=lambda key: published[key]["test_ll"], default=None)


def _versus(mean: float, se: float | None, entry: dict) -> str:
    difference = mean - entry["test_ll"]
    combined = np.hypot(se or 0.0, entry.get("test_ll_se") or 0.0)
    if difference == 0:
        verdict = "equal"
    elif combined == 0:
        verdict = "better" if difference > 0 else "worse"
    elif abs(difference) <= 2 * combined:
        verdict = "within 2 SE"
    else:
        verdict = "better" if difference > 0 else "worse"
    return f"{difference:+.3f} ({verdict})"


def _mean_se(mean: float, se: float | None) -> str:
    return f"{mean:.3f} +- {se:.3f}" if se is not None else f"{mean:.3f}"


def network_description(spec: dict) -> str:
    """The network and prior a result was fitted with, in words (from the stored spec)."""
    network, prior = spec["network"], spec["prior"]
    layers = " x ".join(str(width) for width in network["hidden"]) or "no"
    per_fan_in = " / sqrt(fan-in)" if prior["fan_in"] else ""
    kind = prior.get("kind", "fixed")  # results from before prior kinds were fixed
    if kind == "fixed":
        weights = f"weight prior Normal(0, {prior['weight_scale']:g}{per_fan_in})"
    else:
        learned = "per layer" if kind == "hierarchical" else "per input and per later layer"
        weights = (
            f"{kind} weight prior Normal(0, s{per_fan_in}) with s learned {learned}, "
            f"s ~ {prior['scale_prior']}({prior['scale_prior_scale']:g})"
        )
    noise_scale = spec["likelihood"]["sigma_prior_scale"]
    return (
        f"Hidden layers of {layers} {network['activation']} units, {weights}, noise sd prior "
        f"HalfNormal({noise_scale:g})"
    )


def markdown(summary: dict) -> str:
    lines = [
        f"# UCI {summary['dataset']}: pmbnn {summary['method']}",
        "",
        f"{network_description(summary['spec'])}; inputs and target standardized on each "
        "training split; test RMSE and test log-likelihood (mean log predictive density) in "
        "original units; mean +- standard error over splits.",
        "",
        "| method | test RMSE | test log-likelihood | pmbnn's test LL minus this |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {who} | {rmse} | {ll} | {versus} |"
              for who, rmse, ll, versus in comparison_table(summary)]  # fmt: skip
    lines += [
        "",
        "| split | test RMSE | test log-likelihood | seconds |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['split']} | {r['rmse']:.4f} | {r['test_ll']:.4f} | {r['seconds']:.1f} |"
        for r in summary["splits"]
    ]
    lines += ["", f"Central 90% predictive intervals cover {summary['coverage_90_pooled']:.1%} "
              "of the test points, pooled over splits."]  # fmt: skip
    ran = summary["workers"]  # None: every split was fitted by earlier commands
    where = f"; this command's fits ran on {ran} worker process(es)." if ran else "."
    lines += ["", f"Total fit time {summary['seconds_total']:.0f} s, summed over the splits{where}"]
    lines += ["", "Published figures over 20 splits, mean +- standard error (none where the "
              "source gives a standard deviation instead):"]  # fmt: skip
    for entry in summary["published"].values():
        lines += [f"- {entry['method']}: {entry['citation']}."]
    return "\n".join(lines) + "\n"


def print_summary(summary: dict, out_dir: Path) -> None:
    rows = comparison_table(summary)
    width = max(len(r[0]) for r in rows)
    print(f"pmbnn bench uci: {summary['dataset']} ({summary['method']})")
    print(f"  {'':<{width}}  {'test RMSE':>16}  {'test log-lik.':>16}  pmbnn's LL minus this")
    for who, rmse, ll, versus in rows:
        print(f"  {who:<{width}}  {rmse:>16}  {ll:>16}  {versus}")
    name = f"uci-{summary['dataset']}-{summary['method']}"
    print(f"  results written to {out_dir / name}.json and .md", file=sys.stdout)
