"""The trace's layout in one place: its groups, its variables, and the chain x draw axes.

Every module that reads or writes a trace takes the names from here and reshapes draws with
the two functions below, so that the layout is written once (as arviz-stats keeps all chain
and draw handling in one base layer).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

# Groups. ArviZ's own names where ArviZ has one.
POSTERIOR = "posterior"
SAMPLE_STATS = "sample_stats"
OBSERVED_DATA = "observed_data"
CONSTANT_DATA = "constant_data"
LOG_LIKELIHOOD = "log_likelihood"  # pointwise, original units, for PSIS-LOO
TEST_DATA = "test_data"  # the held-out rows, original units, for calibration
VI_LOSS = "vi_loss"  # ADVI's loss per iteration and its convergence verdict
VI_APPROXIMATION = "vi_approximation"  # q's parameters, for the k-hat check

# Variables and data.
INPUTS = "X"  # the (scaled) training inputs, dims (obs, feature)
TARGET_DATA = "y_data"  # the model's data container for the target
TARGET_SCALE = "y_scale"  # the training target's sd: the unit a fixed noise sd is divided by
OBSERVED = "y"  # the observed (scaled) target, dim obs
NOISE = "sigma"  # the learned noise sd
NU = "nu"  # Student-t noise: the learned degrees of freedom
FUNCTION = "f"  # the network's output at some inputs
LAYER_SCALE = "layer_scale"  # learned weight scale per layer (hierarchical, ard), dim layer
FEATURE_SCALE = "feature_scale"  # learned first-layer scale per input (ard), dim feature
STANDARD_SUFFIX = "_z"  # w_0_z: the N(0, 1) draws a learned-scale weight w_0 is made of

SAMPLE_DIMS = ("chain", "draw")


def group(trace: xr.DataTree, name: str) -> xr.Dataset:
    """One group of the trace as a Dataset (a DataTree node's own variables)."""
    return trace[name].to_dataset()


def flat_draws(values: xr.DataArray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...), chain-major: the order every draw array has."""
    array = values.transpose(*SAMPLE_DIMS, ...).values
    return array.reshape(-1, *array.shape[2:])


def sample_dataarray(
    flat: np.ndarray, posterior: xr.Dataset, dims: tuple[str, ...] = (), **coords: object
) -> xr.DataArray:
    """The inverse of `flat_draws`: (chain * draw, ...) -> DataArray (chain, draw, *dims)."""
    n_chain, n_draw = (posterior.sizes[dim] for dim in SAMPLE_DIMS)
    return xr.DataArray(
        flat.reshape(n_chain, n_draw, *flat.shape[1:]),
        dims=(*SAMPLE_DIMS, *dims),
        coords={dim: posterior[dim].values for dim in SAMPLE_DIMS} | coords,
    )


def n_samples(posterior: xr.Dataset) -> int:
    """chain x draw: how many posterior draws there are in all."""
    return posterior.sizes[SAMPLE_DIMS[0]] * posterior.sizes[SAMPLE_DIMS[1]]
