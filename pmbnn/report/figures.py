"""Pictures for the report, each returned as a base64 PNG so the page embeds it.

Numbers come in already computed (diagnostics, calibration, predictions); nothing is
recomputed here. ArviZ's own plots are used where ArviZ has one; matplotlib draws the rest.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import arviz_plots as azp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from pmbnn.predictive_checks import Calibration, ClassCalibration

DPI = 90
EPISTEMIC, TOTAL, DATA = "#d95f02", "#1b9e77", "#333333"


def png(figure: Figure) -> str:
    """The figure as base64 PNG; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)  # a no-op for figures made by _subplots, which pyplot never tracked
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _subplots(*args, **kwargs):
    """Figure and axes outside pyplot: no GUI backend, no global figure list."""
    figure = Figure(figsize=kwargs.pop("figsize"), layout="constrained")
    return figure, figure.subplots(*args, **kwargs)


def arviz_png(plot: Callable[..., azp.PlotCollection], *args: Any, **kwargs: Any) -> str:
    """An arviz-plots figure (matplotlib backend) as base64 PNG."""
    collection = plot(*args, backend="matplotlib", **kwargs)
    figure = collection.get_viz("figure")
    return png(figure)


def trace(draws: xr.Dataset) -> str:
    return arviz_png(
        azp.plot_trace_dist, xr.DataTree.from_dict({"posterior": draws}), compact=False
    )


def rank(draws: xr.Dataset) -> str:
    """Rank delta-ECDFs per chain with the simultaneous envelope they should stay inside."""
    return arviz_png(azp.plot_rank, xr.DataTree.from_dict({"posterior": draws}), method="envelope")


def energy(trace_tree: xr.DataTree) -> str:
    return arviz_png(azp.plot_energy, trace_tree, show_bfmi=False)


def ebfmi(per_chain: list[float], threshold: float) -> str:
    """E-BFMI of each chain (a category, not a continuous axis) against the warning line."""
    figure, axis = _subplots(figsize=(4, 3))
    chains = [f"chain {i}" for i in range(len(per_chain))]
    colours = [DATA if value >= threshold else EPISTEMIC for value in per_chain]
    axis.bar(chains, per_chain, color=colours, width=0.6)
    axis.axhline(threshold, color=EPISTEMIC, linestyle="--", linewidth=1, label=f"{threshold}")
    axis.set(ylabel="E-BFMI", ylim=(0, max(1.1, max(per_chain) * 1.1)))
    axis.legend(frameon=False, title="warn below")
    return png(figure)


def ppc(predictive: xr.DataTree) -> str:
    return arviz_png(azp.plot_ppc_dist, predictive, kind="kde", num_samples=100)


def loss_curve(losses: np.ndarray, window: int) -> str:
    """Negative ELBO per iteration with its running mean over the convergence window."""
    figure, axis = _subplots(figsize=(8, 3.2))
    iterations = np.arange(1, len(losses) + 1)
    axis.plot(iterations, losses, color="#bbbbbb", linewidth=0.6, label="loss per iteration")
    if len(losses) >= window:
        running = np.convolve(losses, np.ones(window) / window, mode="valid")
        axis.plot(iterations[window - 1 :], running, color=DATA, label=f"mean of last {window}")
    low, high = np.percentile(losses, [0.5, 99])
    axis.set_ylim(low - 0.05 * (high - low), high)
    axis.set(xlabel="iteration", ylabel="negative ELBO")
    axis.legend(frameon=False)
    return png(figure)


def fit_1d(
    x_grid: np.ndarray,
    mean: np.ndarray,
    epistemic: dict[float, tuple[np.ndarray, np.ndarray]],
    total: dict[float, tuple[np.ndarray, np.ndarray]],
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    labels: tuple[str, str],
) -> str:
    """Data with the predictive mean and central 50% / 90% bands, epistemic and total."""
    figure, axes = _subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, bands, colour, title in [
        (axes[0], epistemic, EPISTEMIC, "epistemic: f(x) over posterior draws"),
        (axes[1], total, TOTAL, "total: predictive distribution of y"),
    ]:
        for level, alpha in [(0.9, 0.2), (0.5, 0.35)]:
            lower, upper = bands[level]
            axis.fill_between(
                x_grid,
                lower,
                upper,
                color=colour,
                alpha=alpha,
                linewidth=0,
                label=f"{level:.0%} interval",
            )
        axis.plot(x_grid, mean, color=colour, label="predictive mean")
        axis.scatter(*train, s=9, color=DATA, label="training data", zorder=3)
        if test is not None:
            axis.scatter(
                *test, s=14, facecolor="white", edgecolor=DATA, label="test data", zorder=3
            )
        axis.set(title=title, xlabel=labels[0])
        axis.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel(labels[1])
    return png(figure)


def coverage(calibration: Calibration) -> str:
    """Empirical against nominal coverage, with the binomial band of a calibrated model
    (above the diagonal for whole counts, whose intervals hold more than their level)."""
    figure, axis = _subplots(figsize=(4.6, 4.2))
    levels = calibration.levels
    axis.fill_between(
        levels,
        calibration.expected_low,
        calibration.expected_high,
        color="#cccccc",
        label="95% range if calibrated",
    )
    axis.plot([0, 1], [0, 1], color="#888888", linewidth=0.8)
    axis.plot(levels, calibration.coverage, "o-", color=TOTAL, label="test split")
    axis.set(xlabel="nominal coverage of central interval", ylabel="empirical coverage")
    axis.set(xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(frameon=False, loc="upper left")
    return png(figure)


def pit_histogram(pit: np.ndarray) -> str:
    """Histogram of predictive CDF values at held-out targets: flat if calibrated."""
    figure, axis = _subplots(figsize=(4.6, 4.2))
    bins = int(np.clip(np.sqrt(len(pit)), 5, 20))
    expected = len(pit) / bins
    spread = 2 * np.sqrt(expected * (1 - 1 / bins))  # binomial sd of a bin count, two of them
    axis.axhspan(max(expected - spread, 0), expected + spread, color="#dddddd", zorder=0)
    axis.hist(pit, bins=bins, range=(0, 1), color=TOTAL, edgecolor="white", alpha=0.85)
    axis.axhline(expected, color="#888888", linewidth=0.8)
    axis.set(xlabel="PIT = predictive CDF at the observed y", ylabel="count", xlim=(0, 1))
    return png(figure)


def residuals(calibration: Calibration) -> str:
    """Residual against predictive sd: points should fill the +-2 sd wedge, not escape it.

    Rows whose sd is infinite (Student-t draws with nu <= 2) have no place on the axis; the
    figure says how many it leaves out.
    """
    figure, axis = _subplots(figsize=(4.6, 4.2))
    finite = np.isfinite(calibration.sd_total) & np.isfinite(calibration.residual)
    sd, residual = calibration.sd_total[finite], calibration.residual[finite]
    if finite.any():
        edge = np.linspace(0, sd.max() * 1.1, 20)
        axis.fill_between(edge, -2 * edge, 2 * edge, color="#cccccc", alpha=0.6, label="+-2 sd")
        axis.scatter(sd, residual, s=12, color=TOTAL, label="test point")
        axis.legend(frameon=False)
    axis.axhline(0, color="#888888", linewidth=0.8)
    axis.set(xlabel="predictive sd (total)", ylabel="residual y - mean")
    if left_out := int((~finite).sum()):
        axis.set_title(f"{left_out} of {finite.size} test points have an infinite sd", fontsize=9)
    return png(figure)


def khat(elpd_k: np.ndarray, threshold: float) -> str:
    """Pareto k of each training point's LOO importance weights."""
    figure, axis = _subplots(figsize=(8, 2.8))
    colours = np.where(elpd_k <= threshold, TOTAL, np.where(elpd_k <= 1, EPISTEMIC, "#c00000"))
    axis.scatter(np.arange(len(elpd_k)), elpd_k, s=10, c=colours)
    for level in sorted({threshold, 1.0}):
        axis.axhline(level, color="#888888", linewidth=0.8, linestyle="--")
    axis.set(xlabel="training point", ylabel="Pareto k")
    return png(figure)


PRIOR, POSTERIOR = "#7570b3", TOTAL
SOURCE_COLOURS = {"prior f": "#b3b0d9", "prior y": PRIOR, "posterior f": "#a6dbc9",
                  "posterior y": POSTERIOR}  # fmt: skip


def predictive_statistics(
    statistics: dict[str, dict[str, np.ndarray]], observed: dict[str, float], labels: dict[str, str]
) -> str:
    """Per statistic (sd, min, max over the training inputs) a histogram over draws for each
    source (prior or posterior, f or y) and the observed value: where the data sit in what the
    prior (or posterior) expects."""
    names = list(observed)
    figure, axes = _subplots(1, len(names), figsize=(4.0 * len(names), 3.2))
    for axis, name in zip(np.atleast_1d(axes), names, strict=True):
        pooled = np.concatenate([values[name] for values in statistics.values()])
        low, high = np.quantile(pooled, [0.005, 0.995])
        low, high = min(low, observed[name]), max(high, observed[name])
        bins = np.linspace(low, high + 1e-12 * (abs(high) + 1), 40)
        for source, values in statistics.items():
            axis.hist(np.clip(values[name], low, high), bins=bins, density=True, alpha=0.55,
                      color=SOURCE_COLOURS.get(source, DATA), label=source)  # fmt: skip
        axis.axvline(observed[name], color=DATA, linewidth=1.5, label="observed y")
        axis.set(xlabel=labels[name], yticks=[])
    np.atleast_1d(axes)[0].legend(frameon=False, fontsize=8)
    return png(figure)


def prior_functions_1d(
    grid: np.ndarray,
    f_grid: np.ndarray,
    data: tuple[np.ndarray, np.ndarray],
    labels: tuple[str, str],
    shown: int = 40,
) -> str:
    """Some prior function draws over the range of the (1-D) training inputs, with the data."""
    figure, axis = _subplots(figsize=(8, 3.8))
    axis.plot(grid, f_grid[:shown].T, color=PRIOR, alpha=0.35, linewidth=0.9)
    axis.scatter(*data, s=9, color=DATA, label="training data", zorder=3)
    axis.set(
        xlabel=labels[0], ylabel=labels[1], title=f"{min(shown, len(f_grid))} prior draws of f"
    )
    axis.legend(frameon=False, fontsize=8)
    return png(figure)


def scale_densities(prior: xr.DataArray, posterior: xr.DataArray | None) -> str:
    """Each learned layer scale: its prior draws against its posterior draws."""
    layers = list(prior["layer"].values)
    figure, axes = _subplots(1, len(layers), figsize=(3.4 * len(layers), 2.8), squeeze=False)
    for axis, layer in zip(axes[0], layers, strict=True):
        prior_draws = prior.sel(layer=layer).values.ravel()
        sources = [("prior", prior_draws, PRIOR)]
        if posterior is not None:
            sources.append(("posterior", posterior.sel(layer=layer).values.ravel(), POSTERIOR))
        high = max(np.quantile(draws, 0.995) for _, draws, _ in sources)
        bins = np.linspace(0, high, 40)
        for label, draws, colour in sources:
            axis.hist(np.clip(draws, 0, high), bins=bins, density=True, alpha=0.55,
                      color=colour, label=label)  # fmt: skip
        axis.set(xlabel=f"layer_scale[{layer}]", yticks=[])
    axes[0][0].legend(frameon=False, fontsize=8)
    return png(figure)


def feature_scales(intervals: list[tuple[str, float, float, float, float, float]]) -> str:
    """ARD: each input's learned scale (median, 50% and 90% intervals), largest first."""
    figure, axis = _subplots(figsize=(6.5, 0.8 + 0.32 * len(intervals)))
    for row, (_, q05, q25, q50, q75, q95) in enumerate(intervals):
        axis.plot([q05, q95], [row, row], color=POSTERIOR, linewidth=1.2)
        axis.plot([q25, q75], [row, row], color=POSTERIOR, linewidth=4)
        axis.plot([q50], [row], "o", color="white", markeredgecolor=POSTERIOR, markersize=5)
    axis.set_yticks(range(len(intervals)), [name for name, *_ in intervals])
    axis.invert_yaxis()
    axis.set(xlabel="feature_scale (posterior: median, 50% and 90% intervals)")
    axis.set_xlim(left=0)
    return png(figure)


def reliability(calibration: ClassCalibration) -> str:
    """Accuracy of the most probable class against its predicted probability, per bin."""
    figure, axis = _subplots(figsize=(4.2, 4))
    bins = calibration.reliability
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    axis.bar(centres, [b["accuracy"] for b in bins], width=0.09, color=TOTAL, alpha=0.7,
             label="accuracy in bin")  # fmt: skip
    axis.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color=DATA,
              markersize=4, label="(mean probability, accuracy)")  # fmt: skip
    axis.plot([0, 1], [0, 1], color=EPISTEMIC, linestyle="--", linewidth=1, label="calibrated")
    axis.set(xlabel="probability of the predicted class", ylabel="accuracy", xlim=(0, 1),
             ylim=(0, 1), title=f"ECE {calibration.ece:.3f}")  # fmt: skip
    axis.legend(frameon=False, fontsize=8, loc="upper left")
    return png(figure)


def confusion(calibration: ClassCalibration) -> str:
    """Rows per (true, predicted) class, with the count in each cell."""
    matrix = calibration.confusion
    size = 1.2 + 0.6 * len(calibration.classes)
    figure, axis = _subplots(figsize=(size + 1, size))
    image = axis.imshow(matrix, cmap="Greens")
    labels = [str(c) for c in calibration.classes]
    axis.set_xticks(range(len(labels)), labels)
    axis.set_yticks(range(len(labels)), labels)
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else DATA
        axis.text(j, i, str(count), ha="center", va="center", color=colour)
    axis.set(xlabel="predicted", ylabel="true")
    figure.colorbar(image, ax=axis, shrink=0.8)
    return png(figure)


def decision_surface(
    grid: tuple[np.ndarray, np.ndarray],
    probability: np.ndarray,
    information: np.ndarray,
    points: tuple[np.ndarray, np.ndarray, np.ndarray],
    labels: tuple[str, str, str],
) -> str:
    """Two maps over a 2-D input grid: the predictive probability (of the second class, or
    of the most probable one) and the mutual information (epistemic uncertainty), data on top."""
    figure, axes = _subplots(1, 2, figsize=(11, 4.2), sharey=True)
    gx, gy = grid
    x, y, codes = points
    for axis, values, cmap, title in [
        (axes[0], probability, "RdBu_r", f"predictive probability: {labels[2]}"),
        (axes[1], information, "viridis", "mutual information (epistemic, nats)"),
    ]:
        image = axis.contourf(gx, gy, values, levels=20, cmap=cmap)
        axis.scatter(x, y, c=codes, cmap="coolwarm", s=10, edgecolor="white", linewidth=0.3)
        axis.set(title=title, xlabel=labels[0])
        figure.colorbar(image, ax=axis, shrink=0.85)
    axes[0].set_ylabel(labels[1])
    return png(figure)
