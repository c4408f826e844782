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

from pmbnn.predictive_checks import Calibration

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
    """Empirical against nominal coverage, with the binomial band of a calibrated model."""
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
    """Residual against predictive sd: points should fill the +-2 sd wedge, not escape it."""
    figure, axis = _subplots(figsize=(4.6, 4.2))
    sd = calibration.sd_total
    edge = np.linspace(0, sd.max() * 1.1, 20)
    axis.fill_between(edge, -2 * edge, 2 * edge, color="#cccccc", alpha=0.6, label="+-2 sd")
    axis.scatter(sd, calibration.residual, s=12, color=TOTAL, label="test point")
    axis.axhline(0, color="#888888", linewidth=0.8)
    axis.set(xlabel="predictive sd (total)", ylabel="residual y - mean")
    axis.legend(frameon=False)
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
