"""The UCI protocol: which splits, with which spec, resumed from the work folder.

Each finished split is written at once to a work folder beside the results
(``<out>/.uci-<dataset>-<method>/split-K.json``), so an interrupted bench keeps what it finished
and a rerun does only the rest. The work folder also keeps the spec it was made with; a
different spec is refused rather than mixed in.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pmbnn.arguments import parse_ranges
from pmbnn.bench.results import summarize, write_results
from pmbnn.bench.workers import run_pending
from pmbnn.cluster import default_workers
from pmbnn.errors import PmbnnError
from pmbnn.files import exclusive, replace_file
from pmbnn.interrupts import CompletedBeforeInterrupt
from pmbnn.spec import MAX_SEED, Spec, load_builtin_spec
from pmbnn.uci import available_splits, load_uci, split_rows

UCI_SPEC = "uci-1x50"  # the protocol's network, shipped with pmbnn


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
    return parse_ranges(
        text, "--splits", "0-19, 3 or 0-4,10", available - 1,
        lambda split: f"split {split} does not exist: this dataset has 0-{available - 1}",
    )  # fmt: skip


def make_bench(
    dataset: str,
    method: str | None,
    splits: str,
    uci_dir: Path,
    out_dir: Path,
    sampler: str | None = None,
    spec: Spec | None = None,
) -> UciBench:
    """The protocol's spec (built-in uci-1x50, or `spec`) with the method (None: the spec's),
    checked splits."""
    load_uci(uci_dir, dataset)  # fail now, in the parent, if the dataset is not there
    spec = (spec or load_builtin_spec(UCI_SPEC)).with_overrides(
        inference={"method": method, "sampler": sampler}
    )
    available = available_splits(uci_dir, dataset)
    if available == 0:
        raise PmbnnError(
            f"{Path(uci_dir) / dataset} holds no split files (index_train_K.txt and "
            "index_test_K.txt); give a dataset in the standard UCI layout"
        )
    chosen = parse_splits(splits, available)
    for split in chosen:
        split_rows(uci_dir, dataset, split)  # likewise for every split file
    if spec.inference.seed + max(chosen) > MAX_SEED:
        raise PmbnnError(
            f"split K is fitted with seed [inference].seed + K, which passes {MAX_SEED} for "
            f"split {max(chosen)}; lower [inference].seed"
        )
    return UciBench(dataset, spec.inference.method, chosen, Path(uci_dir), Path(out_dir), spec)


def run_bench(
    bench: UciBench,
    workers: int | None = None,
    progress: bool = False,
    scheduler: str | None = None,
) -> dict:
    """Fit every requested split not already done, then write and return the summary.

    The fits run on the Dask cluster at `scheduler` (or Dask's configured one), else on a
    local cluster of `workers` processes (default: one per usable core). One bench at a time
    per work folder: a second one is refused (exit 2), not mixed in.
    """
    with exclusive(bench.work_dir):
        _check_results_are_ours(bench)
        created = not bench.work_dir.exists()
        try:
            _prepare_work_dir(bench)
            pending = [s for s in bench.splits if not _split_file(bench, s).is_file()]
            workers = min(workers or default_workers(bench.spec, len(pending)), len(pending))
            if pending:
                workers = run_pending(
                    bench.spec,
                    bench.uci_dir,
                    bench.dataset,
                    bench.work_dir,
                    pending,
                    workers,
                    progress,
                    scheduler,
                )
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
        summary = summarize(bench.dataset, bench.method, bench.spec, results, workers or None)
        write_results(bench.out_dir, bench.name, summary)
    return summary


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
