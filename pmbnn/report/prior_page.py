"""A spec -> a self-contained HTML page of what its prior implies on its training inputs.

`pmbnn prior` writes it before any fit (one forward pass, no inference); the report's "Prior and
posterior" section shows the same pictures for a fitted run with the posterior beside the prior.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from pmbnn import jsontext
from pmbnn.files import Destination, OutputKind
from pmbnn.prior_check import (
    PRIOR_DRAWS,
    STATISTICS,
    PriorPredictive,
    prior_predictive,
)
from pmbnn.report import figures
from pmbnn.report.templates import render_template
from pmbnn.spec import Spec
from pmbnn.text import format_number
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE

PRIOR_CHECK = OutputKind("prior predictive check")
LABELS = {name: label for name, (label, _) in STATISTICS.items()}


def build_prior_page(
    spec: Spec,
    out_dir: str | Path,
    force: bool = False,
    draws: int = PRIOR_DRAWS,
    inputs: list[str | Path | None] | None = None,
    title: str = "spec",
) -> tuple[Path, dict]:
    """Write ``index.html`` and ``prior.json`` (the numbers) for the prior of `spec`.

    The output is reserved before the draws (a busy, protected or existing folder without
    `force` fails first) and published whole, like a report.
    """
    with Destination(out_dir, PRIOR_CHECK, force, [spec.data.path, *(inputs or [])]) as target:
        prior = prior_predictive(spec, draws)
        numbers = {
            "spec": spec.model_dump(),
            "draws": draws,
            "seed": spec.inference.seed,
            "n_train": len(prior.y),
            "summary": prior.summary(),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plotting libraries' deprecation chatter
            images = prior_images(prior)
        page = render_template(
            "prior.html.j2",
            title=title,
            spec_toml=spec.to_toml(),
            numbers=numbers,
            images=images,
            target=prior.target,
            fmt=format_number,
        )

        def fill(folder: Path) -> None:
            (folder / "index.html").write_text(page, encoding="utf-8")
            (folder / "prior.json").write_text(jsontext.dumps(numbers, True))

        return target.write(fill), numbers


def prior_images(
    prior: PriorPredictive,
    posterior: dict[str, dict[str, np.ndarray]] | None = None,
    posterior_scales: xr.Dataset | None = None,
) -> dict[str, str]:
    """The prior's pictures; with the posterior's statistics and scales, both side by side."""
    statistics = prior.statistics() | (posterior or {})
    images = {"statistics": figures.predictive_statistics(statistics, prior.observed(), LABELS)}
    if prior.grid is not None and prior.f_grid is not None and posterior is None:
        images["functions"] = figures.prior_functions_1d(
            prior.grid,
            prior.f_grid,
            (prior.x[:, 0], prior.y),
            (prior.feature_names[0], prior.target),
        )
    if LAYER_SCALE in prior.scales:
        after = None if posterior_scales is None else posterior_scales.get(LAYER_SCALE)
        images["layer_scales"] = figures.scale_densities(prior.scales[LAYER_SCALE], after)
    if posterior_scales is not None and FEATURE_SCALE in posterior_scales:
        intervals = feature_intervals(posterior_scales[FEATURE_SCALE])
        images["feature_scales"] = figures.feature_scales(intervals)
    return images


Interval = tuple[str, float, float, float, float, float]


def feature_intervals(draws: xr.DataArray) -> list[Interval]:
    """(feature, 5%, 25%, 50%, 75%, 95% points) of each input's learned scale, largest first."""
    dims = [dim for dim in draws.dims if dim != "feature"]
    points = draws.quantile([0.05, 0.25, 0.5, 0.75, 0.95], dim=dims)
    rows: list[Interval] = []
    for name in draws["feature"].values:
        q05, q25, q50, q75, q95 = map(float, points.sel(feature=name).values)
        rows.append((str(name), q05, q25, q50, q75, q95))
    return sorted(rows, key=lambda row: -row[3])
