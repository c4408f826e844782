"""`pmbnn bench uci`: the standard UCI protocol over many splits, in parallel, resumable.

Each finished split is written at once to a work folder beside the results
(``<out>/.uci-<dataset>-<method>/split-K.json``), so an interrupted bench keeps what it finished
and a rerun does only the rest. The work folder also keeps the spec it was made with; a
different spec is refused rather than mixed in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import tomllib
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import active_children, get_context
from pathlib import Path

import numpy as np

from pmbnn import jsontext
from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.files import exclusive, replace_file
from pmbnn.fitted import Refitter, fit_split
from pmbnn.interrupts import CompletedBeforeInterrupt, die_with_parent
from pmbnn.spec import MAX_SEED, Spec, load_spec
from pmbnn.uci import available_splits, load_uci, published, split_rows

UCI_SPEC = Path(__file__).resolve().parent.parent / "models" / "uci-1x50.toml"


@dataclass(frozen=True)
class UciBench:
    dataset: str
    method: str
    splits: list[int]
    uci_dir: Path
    out_dir: Path
    spec: Spec

    @property
    def name(self) -> str:
        return f"uci-{self.dataset}-{self.method}"

    @property
    def work_dir(self) -> Path:
        return self.out_dir / f".{self.name}"


def parse_splits(text: str, available: int) -> list[int]:
    """'0-19', '3', '0-4,10' -> sorted split numbers, each checked against what exists."""
    splits: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise PmbnnError(f"cannot read --splits {text!r}; write e.g. 0-19, 3 or 0-4,10")
        low, high = int(match[1]), int(match[2] or match[1])
        splits.update(range(low, high + 1))
    beyond = sorted(s for s in splits if s >= available)
    if beyond:
        raise PmbnnError(f"split {beyond[0]} does not exist: this dataset has 0-{available - 1}")
    return sorted(splits)


def make_bench(
    dataset: str,
    method: str,
    splits: str,
    uci_dir: Path,
    out_dir: Path,
    sampler: str | None = None,
    spec: Spec | None = None,
) -> UciBench:
    """The protocol's spec (models/uci-1x50.toml, or `spec`) with the method, checked splits."""
    load_uci(uci_dir, dataset)  # fail now, in the parent, if the dataset is not there
    spec = (spec or load_spec(UCI_SPEC)).with_overrides(
        inference={"method": method, "sampler": sampler}
    )
    chosen = parse_splits(splits, available_splits(uci_dir, dataset))
    for split in chosen:
        split_rows(uci_dir, dataset, split)  # likewise for every split file
    if spec.inference.seed + max(chosen) > MAX_SEED:
        raise PmbnnError(
            f"split K is fitted with seed [inference].seed + K, which passes {MAX_SEED} for "
            f"split {max(chosen)}; lower [inference].seed"
        )
    return UciBench(dataset, method, chosen, Path(uci_dir), Path(out_dir), spec)


def run_bench(bench: UciBench, workers: int | None = None, progress: bool = False) -> dict:
    """Fit every requested split not already done, then write and return the summary.

    One bench at a time per work folder: a second one is refused (exit 2), not mixed in.
    """
    with exclusive(bench.work_dir):
        _check_results_are_ours(bench)
        created = not bench.work_dir.exists()
        try:
            _prepare_work_dir(bench)
            pending = [s for s in bench.splits if not _split_file(bench, s).is_file()]
            cores = os.cpu_count() or 1
            if workers is None:  # NUTS runs its chains in parallel itself
                per_fit = bench.spec.inference.chains if bench.method == "nuts" else 1
                workers = max(1, cores // per_fit)
            workers = max(1, min(workers, len(pending) or 1))
            if pending:
                _run_pending(bench, pending, workers, progress)
        except BaseException as exc:
            finished = len(list(bench.work_dir.glob("split-*.json")))
            if created and not finished:
                shutil.rmtree(bench.work_dir, ignore_errors=True)  # nothing worth resuming
            if finished and isinstance(exc, KeyboardInterrupt):
                raise CompletedBeforeInterrupt(
                    f"the {finished} finished split(s) are kept in {bench.work_dir}; the same "
                    "command resumes from them"
                ) from exc
            raise
        results = [json.loads(_split_file(bench, s).read_text()) for s in bench.splits]
        summary = summarize(bench, results, workers)
        _write_results(bench, summary)
    return summary


def summarize(bench: UciBench, results: list[dict], workers: int) -> dict:
    def mean_se(key: str) -> tuple[float, float | None]:
        values = np.array([r[key] for r in results])
        se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        return float(values.mean()), se  # no standard error from one split

    rmse_mean, rmse_se = mean_se("rmse")
    ll_mean, ll_se = mean_se("test_ll")
    comparisons = {
        key: entry["results"][bench.dataset] | {"method": entry["method"],
                                                "citation": entry["citation"]}
        for key, entry in published().items()
        if bench.dataset in entry["results"]
    }  # fmt: skip
    return {
        "dataset": bench.dataset,
        "method": bench.method,
        "splits": results,
        "rmse_mean": rmse_mean,
        "rmse_se": rmse_se,
        "test_ll_mean": ll_mean,
        "test_ll_se": ll_se,
        "seconds_total": float(sum(r["seconds"] for r in results)),
        "workers": workers,
        "spec": bench.spec.model_dump(),
        "published": comparisons,
    }


def _check_results_are_ours(bench: UciBench) -> None:
    """The results files are rewritten on every run: only if pmbnn wrote them, for this bench."""
    for suffix in (".json", ".md"):
        path = bench.out_dir / f"{bench.name}{suffix}"
        if path.exists() and not _is_result_of(bench, path):
            raise PmbnnError(
                f"{path} exists and is not a pmbnn result of this bench; choose another --out"
            )


def _is_result_of(bench: UciBench, path: Path) -> bool:
    try:
        text = path.read_text()
        if path.suffix == ".md":
            return text.startswith(f"# UCI {bench.dataset}: pmbnn {bench.method}\n")
        content = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(content, dict) and (content.get("dataset"), content.get("method")) == (
        bench.dataset,
        bench.method,
    )


def _prepare_work_dir(bench: UciBench) -> None:
    try:
        bench.work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PmbnnError(
            f"cannot create {bench.work_dir}: {exc.strerror}; choose another --out"
        ) from None
    spec_file = bench.work_dir / "spec.toml"
    # Compared as specs, not text: a key added to Spec later (with its default) is no change.
    if spec_file.is_file() and _stored_spec(spec_file) != bench.spec:
        raise PmbnnError(
            f"{bench.work_dir} holds splits fitted with a different spec; remove that folder "
            "to start over, or choose another --out"
        )
    replace_file(spec_file, bench.spec.to_toml())


def _stored_spec(path: Path) -> Spec | None:
    try:
        return Spec.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValueError):
        return None  # unreadable, or from an incompatible version: a different spec


def _split_file(bench: UciBench, split: int) -> Path:
    return bench.work_dir / f"split-{split}.json"


def _run_pending(bench: UciBench, pending: list[int], workers: int, progress: bool) -> None:
    context = get_context("spawn")  # fresh interpreters: no forked PyTensor or thread state
    arguments = (
        os.getpid(),
        bench.spec.to_toml(),
        str(bench.uci_dir),
        bench.dataset,
        str(bench.work_dir),
    )
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=arguments
    )
    children_before = set(active_children())
    try:
        futures = [pool.submit(_fit_split, split) for split in pending]
        done = as_completed(futures)
        if progress:
            from rich.progress import track

            done = track(done, total=len(futures), description=f"{bench.name}", console=None)
        for future in done:
            future.result()  # a failed split stops the bench with its error
    except BaseException:
        # Stop at once: the running fits are abandoned (finished splits are kept), not waited for.
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in set(active_children()) - children_before:
            worker.terminate()
        pool.shutdown()  # returns at once now; releases the pool's pipes and locks
        raise
    pool.shutdown()


_WORKER: dict = {}


def _init_worker(parent: int, spec_toml: str, uci_dir: str, dataset: str, work_dir: str) -> None:
    """Per process, once: the data and spec, and quiet logs."""
    import logging

    die_with_parent(parent)  # a bench killed outright leaves no worker running on

    import pymc  # noqa: F401  (sets its logger on import)

    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", DataWarning)  # constant columns are part of the protocol
    warnings.simplefilter("ignore", RuntimeWarning)
    _WORKER.update(
        spec=Spec.model_validate(tomllib.loads(spec_toml)),
        data=load_uci(uci_dir, dataset),
        uci_dir=uci_dir,
        dataset=dataset,
        work_dir=Path(work_dir),
        refitter=Refitter(),  # compiled on the first split, reused for the rest
    )


def _fit_split(split: int) -> dict:
    spec: Spec = _WORKER["spec"]
    # Each split has its own seed, so splits are independent replications.
    spec = spec.with_overrides(inference={"seed": spec.inference.seed + split})
    train, test = split_rows(_WORKER["uci_dir"], _WORKER["dataset"], split)
    started = time.perf_counter()
    _, metrics = fit_split(spec, _WORKER["data"], train, test, refitter=_WORKER["refitter"])
    result = {
        "split": split,
        "rmse": metrics["test_rmse"],
        "test_ll": metrics["test_lpd"],
        "seconds": round(time.perf_counter() - started, 2),
        "coverage_90": metrics["test_coverage_90"],
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
    }
    replace_file(_WORKER["work_dir"] / f"split-{split}.json", jsontext.dumps(result))
    return result


def _write_results(bench: UciBench, summary: dict) -> None:
    for suffix, text in ((".json", jsontext.dumps(summary)), (".md", markdown(summary))):
        replace_file(bench.out_dir / f"{bench.name}{suffix}", text)


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
