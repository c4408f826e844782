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


def summarize(dataset: str, method: str, spec: Spec, results: list[dict], workers: int) -> dict:
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
        "seconds_total": float(sum(r["seconds"] for r in results)),
        "workers": workers,
        "spec": spec.model_dump(),
        "published": comparisons,
    }


def write_results(out_dir: Path, name: str, summary: dict) -> None:
    for suffix, text in ((".json", jsontext.dumps(summary)), (".md", markdown(summary))):
        replace_file(out_dir / f"{name}{suffix}", text)


def comparison_table(summary: dict) -> list[tuple[str, str, str]]:
    """(who, test RMSE, test log-likelihood) rows: this run, then the published methods."""
    n = len(summary["splits"])
    rows = [
        (
            f"pmbnn {summary['method']} ({n} split{'s' if n != 1 else ''})",
            _mean_se(summary["rmse_mean"], summary["rmse_se"]),
            _mean_se(summary["test_ll_mean"], summary["test_ll_se"]),
        )
    ]
    for entry in summary["published"].values():
        rows.append(
            (
                f"{entry['method']} (published, 20 splits)",
                f"{entry['rmse']:.3f} +- {entry['rmse_se']:.3f}",
                f"{entry['test_ll']:.3f} +- {entry['test_ll_se']:.3f}",
            )
        )
    return rows


def _mean_se(mean: float, se: float | None) -> str:
    return f"{mean:.3f} +- {se:.3f}" if se is not None else f"{mean:.3f}"


def network_description(spec: dict) -> str:
    """The network and prior a result was fitted with, in words (from the stored spec)."""
    network, prior = spec["network"], spec["prior"]
    layers = " x ".join(str(width) for width in network["hidden"]) or "no"
    scale = prior["weight_scale"]
    weight_sd = f"{scale:g} / sqrt(fan-in)" if prior["fan_in"] else f"{scale:g}"
    noise_scale = spec["likelihood"]["sigma_prior_scale"]
    return (
        f"Hidden layers of {layers} {network['activation']} units, weight prior "
        f"Normal(0, {weight_sd}), noise sd prior HalfNormal({noise_scale:g})"
    )


def markdown(summary: dict) -> str:
    lines = [
        f"# UCI {summary['dataset']}: pmbnn {summary['method']}",
        "",
        f"{network_description(summary['spec'])}; inputs and target standardized on each "
        "training split; test RMSE and test log-likelihood (mean log predictive density) in "
        "original units; mean +- standard error over splits.",
        "",
        "| method | test RMSE | test log-likelihood |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {who} | {rmse} | {ll} |" for who, rmse, ll in comparison_table(summary)]
    lines += [
        "",
        "| split | test RMSE | test log-likelihood | seconds |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['split']} | {r['rmse']:.4f} | {r['test_ll']:.4f} | {r['seconds']:.1f} |"
        for r in summary["splits"]
    ]
    lines += ["", f"Total fit time {summary['seconds_total']:.0f} s over {summary['workers']} "
              "worker process(es)."]  # fmt: skip
    for entry in summary["published"].values():
        lines += ["", f"{entry['method']}: {entry['citation']}."]
    return "\n".join(lines) + "\n"


def print_summary(summary: dict, out_dir: Path) -> None:
    rows = comparison_table(summary)
    width = max(len(r[0]) for r in rows)
    print(f"pmbnn bench uci: {summary['dataset']} ({summary['method']})")
    print(f"  {'':<{width}}  {'test RMSE':>16}  {'test log-lik.':>16}")
    for who, rmse, ll in rows:
        print(f"  {who:<{width}}  {rmse:>16}  {ll:>16}")
    name = f"uci-{summary['dataset']}-{summary['method']}"
    print(f"  results written to {out_dir / name}.json and .md", file=sys.stdout)
