"""A spec's prior -> functions and targets it implies on the training inputs, before any fit.

A weight prior is chosen in weight space but judged in data space: too narrow and every prior
function is nearly flat; too wide and the prior predictive y spans many times the observed
range. Drawing the network output and y from the model's own graph (one compiled forward pass,
no inference) shows which, beside the observed targets, in the target's original units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import xarray as xr

from pmbnn.data import MAX_ABS_VALUE, Dataset, Standardizer, load_split
from pmbnn.errors import PmbnnError
from pmbnn.families import family_of
from pmbnn.families.base import NetworkOutputs
from pmbnn.model import build_model
from pmbnn.spec import Spec
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE, OBSERVED

PRIOR_DRAWS = 500
GRID_POINTS = 200  # inputs of the 1-D picture of prior functions
STATISTICS = {  # name -> (label, per-draw statistic of a (draws, rows) array)
    "sd": ("sd across the training inputs", lambda v: v.std(axis=-1)),
    "min": ("minimum over the training inputs", lambda v: v.min(axis=-1)),
    "max": ("maximum over the training inputs", lambda v: v.max(axis=-1)),
}


def function_statistic(location: np.ndarray) -> np.ndarray:
    """The family's location per (draw, row) as the pictures show it: for more than two
    classes, the probability of the most probable one (how sure the network is)."""
    return location.max(axis=-1) if location.ndim == 3 else location


def draw_statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """Each statistic of STATISTICS per draw of a (draws, rows) array (or of one row of data)."""
    return {name: statistic(values) for name, (_, statistic) in STATISTICS.items()}


@dataclass(frozen=True)
class PriorPredictive:
    """Draws of the network output f and of y from the prior, on the training inputs.

    Attributes
    ----------
    f, y_rep : ndarray
        (draws, rows), original units.
    x, y : ndarray
        The training inputs and the observed training targets.
    grid, f_grid : ndarray or None
        For one input feature: an evenly spaced grid over the data (original units) and f on it.
    """

    f: np.ndarray
    y_rep: np.ndarray
    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target: str
    grid: np.ndarray | None = None
    f_grid: np.ndarray | None = None
    # Prior draws of the learned weight scales (layer_scale, feature_scale), dims (draw, ...).
    scales: xr.Dataset = field(default_factory=xr.Dataset)

    def statistics(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-draw statistics of the prior f and y, for the pictures."""
        return {"prior f": draw_statistics(self.f), "prior y": draw_statistics(self.y_rep)}

    def observed(self) -> dict[str, float]:
        """Each statistic of the observed training targets."""
        return {name: float(value[0]) for name, value in draw_statistics(self.y[None]).items()}

    def summary(self) -> dict:
        """`summarize_statistics` of the prior f and y."""
        return summarize_statistics(self.statistics(), self.observed())


def summarize_statistics(
    statistics: dict[str, dict[str, np.ndarray]], observed: dict[str, float]
) -> dict:
    """Per statistic: its label, the observed value, and for each source (prior f, prior y,
    posterior y, ...) the 5%, 50% and 95% points over draws and the fraction of draws below the
    observed value (near 0 or 1: that source disagrees with the data on that statistic)."""
    return {
        name: {"label": label, "observed": observed[name]}
        | {source: spread(values[name], observed[name]) for source, values in statistics.items()}
        for name, (label, _) in STATISTICS.items()
    }


def spread(values: np.ndarray, observed: float) -> dict[str, float]:
    low, median, high = np.quantile(values, [0.05, 0.5, 0.95])
    return {"q05": float(low), "q50": float(median), "q95": float(high),
            "below_observed": float(np.mean(values < observed))}  # fmt: skip


def prior_predictive(spec: Spec, draws: int = PRIOR_DRAWS) -> PriorPredictive:
    """What the spec's prior implies on its own training rows, before any fit.

    Parameters
    ----------
    spec : Spec
        Its data, split and standardization are used as a fit would, its seed for the draws.
    draws : int, default 500

    Returns
    -------
    PriorPredictive
        Prior draws of f and y on the training rows (original units), the observed targets,
        per-draw statistics against the observed ones (`summary`), and prior draws of any
        learned scales.
    """
    family = family_of(spec.likelihood)
    data, train, _ = load_split(spec.data, spec.inference.seed, family)
    y = family.transform(data.y[train])
    scaler = Standardizer.fit(data.x[train], y, spec.data.standardize, family.continuous)
    training = Dataset(
        data.x[train], data.y[train], data.feature_names, data.target, data.source, data.classes
    )
    return prior_predictive_on_rows(spec, training, scaler, draws)


def prior_predictive_on_rows(
    spec: Spec, training: Dataset, scaler: Standardizer, draws: int = PRIOR_DRAWS
) -> PriorPredictive:
    """Draws from the prior of `spec`'s BNN on the training rows, scaled as a fit scales them.

    The model is built on the training inputs (plus a grid for one input feature), and f and y
    are drawn together by one compiled function: ``pm.draw`` of the model's own output, so the
    prior is the one the fit would use, seeded by ``[inference].seed``.
    """
    x = scaler.x(training.x)
    grid = None
    if x.shape[1] == 1:
        low, high = training.x.min(), training.x.max()
        margin = 0.1 * (high - low) or 1.0
        grid = np.linspace(low - margin, high + margin, GRID_POINTS)
        x = np.vstack([x, scaler.x(grid[:, None])])
    # The observed values do not enter prior draws; the grid rows only need a placeholder.
    family = family_of(spec.likelihood)
    y_model = scaler.y(family.transform(training.y))
    y = np.concatenate([y_model, np.full(len(x) - len(training.y), y_model[0])])
    bnn = build_model(
        spec, x, y, training.feature_names, classes=training.classes, target_scale=scaler.y_scale
    )
    model = bnn.model
    scale_names = [name for name in (LAYER_SCALE, FEATURE_SCALE) if name in model.named_vars]
    noise_names = [name for name in family.parameter_shapes() if name in model.named_vars]
    outputs, y_scaled, *other_draws = pm.draw(
        [bnn.output, model[OBSERVED], *(model[name] for name in [*scale_names, *noise_names])],
        draws=draws,
        random_seed=spec.inference.seed,
    )
    scale_draws = other_draws[: len(scale_names)]
    # The prior's draws as a one-chain posterior: the family maps them as it maps a fit's.
    noise = xr.Dataset(
        {
            name: (("chain", "draw"), values[None])
            for name, values in zip(noise_names, other_draws[len(scale_names) :], strict=True)
        },
        coords={"chain": [0], "draw": np.arange(draws)},
    )
    distribution = family.draws(
        NetworkOutputs(outputs, noise, scaler.y_mean, scaler.y_scale, training.classes)
    )
    f = function_statistic(distribution.expected())
    y_rep = family.untransform(scaler.y_original(np.asarray(y_scaled, dtype=float)))
    # Past MAX_ABS_VALUE the per-draw variances overflow (as for data, see data.py).
    if not np.all(np.abs(np.concatenate([f, y_rep])) <= MAX_ABS_VALUE):
        raise PmbnnError(
            "the prior's draws of the network output overflow: lower [prior].weight_scale or "
            "scale_prior_scale (or bias_scale)"
        )
    scales = xr.Dataset(
        {
            name: xr.DataArray(
                values,
                dims=("draw", *model.named_vars_to_dims[name]),
                coords={dim: list(model.coords[dim]) for dim in model.named_vars_to_dims[name]},
            )
            for name, values in zip(scale_names, scale_draws, strict=True)
        }
    )
    rows = len(training.y)
    return PriorPredictive(
        f=f[:, :rows],
        y_rep=y_rep[:, :rows],
        x=training.x,
        y=training.y,
        feature_names=training.feature_names,
        target=training.target,
        grid=grid,
        f_grid=None if grid is None else f[:, rows:],
        scales=scales,
    )
