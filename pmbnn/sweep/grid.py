"""What a sweep fits: the grid of spec settings (parsed from ``--grid``), the seeds, and the
folds of the data, crossed into one `FitTask` per (point, seed, fold)."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass
from typing import Any

import numpy as np

from pmbnn.arguments import parse_ranges
from pmbnn.cluster import FitTask
from pmbnn.data import Dataset, load_dataset, load_split
from pmbnn.errors import PmbnnError
from pmbnn.families import family_of
from pmbnn.spec import MAX_SEED, Spec

FORBIDDEN = {
    "data": "the sweep's data is fixed: give it with --data",
    "inference.seed": "give the fit seeds with --seeds",
}
MIN_FOLD_ROWS = 2
MAX_SEEDS = 1000  # fits per point and fold: more is a typo, not a sweep


@dataclass(frozen=True)
class Plan:
    """A sweep: the base spec, the grid (key -> values, in the order given), the fit seeds and
    the number of folds (1: the spec's own train/test split)."""

    spec: Spec
    grid: dict[str, list[Any]]
    seeds: list[int]
    folds: int

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, the first key varying slowest."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True))
                for values in itertools.product(*self.grid.values())]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"grid": self.grid, "seeds": self.seeds, "folds": self.folds,
                "spec": self.spec.model_dump(exclude_none=True)}  # fmt: skip


def parse_grid(arguments: list[str], spec: Spec) -> dict[str, list[Any]]:
    """``section.key=v1,v2`` arguments -> {key: [values]}, each value read as TOML (``[50]``,
    ``0.5``, ``true``) or else as text (``advi``), and every point checked as a spec now."""
    grid: dict[str, list[Any]] = {}
    for argument in arguments:
        key, sep, text = argument.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise PmbnnError(f"cannot read --grid {argument!r}; write KEY=V1,V2 e.g. "
                             "prior.weight_scale=0.5,1,2 or network.hidden=[50],[100]")  # fmt: skip
        section, _, name = key.partition(".")
        if section not in Spec.model_fields or not name:
            raise PmbnnError(f"--grid key {key!r} is not a spec key; write SECTION.KEY with a "
                             f"section of {', '.join(Spec.model_fields)}")  # fmt: skip
        for forbidden, why in FORBIDDEN.items():
            if key == forbidden or section == forbidden:
                raise PmbnnError(f"--grid cannot vary {key}: {why}")
        if key in grid:
            raise PmbnnError(f"--grid gives {key} twice; list all its values once: {key}=A,B")
        values = [_value(part) for part in _split_values(text)]
        for value in values:
            spec.with_overrides(source=f"--grid {key}={text}", **{section: {name: value}})
        grid[key] = values
    if not grid:
        raise PmbnnError("give at least one --grid KEY=V1,V2")
    return grid


def _split_values(text: str) -> list[str]:
    """Split at the commas outside brackets: ``[50,50],[100]`` -> ``[50,50]``, ``[100]``."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    if any(not part.strip() for part in parts) or depth != 0:
        raise PmbnnError(f"cannot read the values {text!r} of --grid: an empty value or an "
                         "unclosed bracket")  # fmt: skip
    return [part.strip() for part in parts]


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a choice such as advi or tanh


def parse_seeds(text: str | None, spec: Spec) -> list[int]:
    """'0-2', '1,5' -> seeds; None -> the spec's own seed."""
    if text is None:
        return [spec.inference.seed]
    return parse_ranges(
        text, "--seeds", "0-2 or 1,5", MAX_SEED,
        lambda seed: f"--seeds {seed} passes the largest seed, {MAX_SEED}", MAX_SEEDS,
    )  # fmt: skip


def point_spec(plan: Plan, point: dict[str, Any], seed: int) -> Spec:
    sections: dict[str, dict[str, Any]] = {"inference": {"seed": seed}}
    for key, value in point.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    return plan.spec.with_overrides(source="--grid", **sections)


def load_folds(plan: Plan) -> tuple[Dataset, list[tuple[np.ndarray, np.ndarray]]]:
    """The data and its (training, test) rows per fold: K-fold cross-validation over every
    row, shuffled by the spec's seed (the same folds for every point and fit seed, so points
    are compared on the same rows), or the spec's own split when folds is 1."""
    spec, family = plan.spec, family_of(plan.spec.likelihood)
    if plan.folds == 1:
        data, train, test = load_split(spec.data, spec.inference.seed, family)
        if not len(test):
            raise PmbnnError("--folds 1 scores on the spec's held-out rows, and it holds none; "
                             "give --test-fraction, --test-data or --folds K")  # fmt: skip
        return data, [(train, test)]
    if spec.data.test_path is not None:
        raise PmbnnError("--folds K cross-validates one table; leave out --test-data, or give "
                         "--folds 1 to score on it")  # fmt: skip
    data = load_dataset(spec.data, spec.inference.seed, family)
    rows = len(data.y)
    if rows < plan.folds * MIN_FOLD_ROWS:
        raise PmbnnError(f"{rows} rows cannot make {plan.folds} folds; lower --folds")
    order = np.random.default_rng([spec.inference.seed, 11]).permutation(rows)
    held = np.array_split(order, plan.folds)
    return data, [(np.sort(np.setdiff1d(order, fold)), np.sort(fold)) for fold in held]


def check_families(plan: Plan, data: Dataset) -> None:
    """Before any fit: every point's likelihood can model the target, and all score it alike
    (a density is not comparable with a probability mass, nor labels with numbers)."""
    base = family_of(plan.spec.likelihood)
    for values in plan.grid.get("likelihood.family", []):
        family = family_of(
            point_spec(plan, {"likelihood.family": values}, plan.seeds[0]).likelihood
        )
        if (family.continuous, family.labelled) != (base.continuous, base.labelled):
            raise PmbnnError(
                f"--grid likelihood.family mixes {plan.spec.likelihood.family} and {values}: "
                "their test log densities are not on one scale (a density against a "
                "probability, or labels against numbers); sweep each kind on its own"
            )
        if not family.labelled:
            family.check_target(data.y, str(data.target), data.source)


def make_tasks(plan: Plan, folds: list[tuple[np.ndarray, np.ndarray]]) -> list[FitTask]:
    return [
        FitTask(f"point-{p}-seed-{seed}-fold-{k}", point_spec(plan, point, seed), train, test)
        for p, point in enumerate(plan.points())
        for seed in plan.seeds
        for k, (train, test) in enumerate(folds)
    ]
