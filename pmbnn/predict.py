"""Posterior draws + new inputs -> the network's outputs for every draw at once.

The network is never written here: the model's own output expression is vectorised over a
leading draw axis (``vectorize_graph``) and compiled once, so one call evaluates every draw on a
block of inputs. What the outputs mean (the predictive distribution, its summaries) is the
likelihood family's (families/).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import graph_replace, vectorize_graph

from pmbnn.families import CLASS_COLUMNS, SUMMARY_COLUMNS, ClassPrediction, Prediction
from pmbnn.files import OutputKind
from pmbnn.inference.compile_target import compile_target
from pmbnn.model import BnnModel
from pmbnn.trace import flat_draws

DEFAULT_LEVELS = (0.05, 0.95)
__all__ = ["DEFAULT_LEVELS", "PREDICTIONS", "SUMMARY_COLUMNS", "ClassPrediction",
           "NetworkFunction", "Prediction", "is_prediction_table", "padded"]  # fmt: skip
# Inputs are evaluated in blocks of one fixed number of rows (the last block padded), so that a
# row's numbers never depend on how many rows are predicted with it. XLA and BLAS choose kernels,
# and numpy its summation order, by the shape of the arrays: measured, predicting 3000 rows at
# once and in uneven parts differed by up to 7e-15 (network outputs) and 7e-16 (summaries); with
# every block of one shape, a row's numbers are a function of that row alone, whatever its
# position in the block (tests/test_batch_predict.py checks both), so a table predicted in
# parts (`batch_predict`, out of core) equals the table predicted at once, to the bit.
# A block holds about BLOCK_ELEMENTS (draws x rows x units) elements, 16 MB, and at most
# MAX_BLOCK_ROWS rows: large enough that the per-call overhead is a few per cent, small enough
# that padding a short input to a whole block costs milliseconds.
BLOCK_ELEMENTS = 2_000_000
MAX_BLOCK_ROWS = 256


class NetworkFunction:
    """f(x) for every posterior draw at once, compiled from the model's own graph."""

    def __init__(self, bnn: BnnModel):
        model = bnn.model
        self.weight_names = bnn.weight_names
        # The weights and biases become inputs, whether they are random variables (a fixed
        # prior) or Deterministics of learned scales: the scales then drop out of the graph.
        weights = [model[name] for name in self.weight_names]
        stand_ins = [w.type(name=w.name) for w in weights]
        (output,) = graph_replace([bnn.output], dict(zip(weights, stand_ins, strict=True)))
        batched = [v.type.clone(shape=(None, *v.type.shape))(name=v.name) for v in stand_ins]
        new_inputs = pt.matrix("x_new", dtype=bnn.inputs.type.dtype)
        replace = dict(zip(stand_ins, batched, strict=True)) | {bnn.inputs: new_inputs}
        vectorised = vectorize_graph(output, replace=replace)
        # JAX (when installed) fuses each layer's matmul and activation: measured 6x faster
        # than numba for 1000 draws of the benchmark network.
        mode = "JAX" if compile_target(bnn.spec.inference.backend) == "jax" else None
        self._fn = pytensor.function([new_inputs, *batched], vectorised, mode=mode)
        self._lock = threading.Lock()  # a compiled function is not safe to call from 2 threads
        self._widest = max([bnn.inputs.get_value().shape[1], *_layer_widths(model)])

    def block_rows(self, n_draws: int) -> int:
        """Rows of every block this network is evaluated on, for n_draws draws."""
        return max(1, min(MAX_BLOCK_ROWS, BLOCK_ELEMENTS // (n_draws * self._widest)))

    def __call__(self, posterior: xr.Dataset, x: np.ndarray) -> np.ndarray:
        """Network outputs, shape (draws, inputs[, outputs]), draws flattened chain-major."""
        weights = [flat_draws(posterior[name]) for name in self.weight_names]
        n_draws = weights[0].shape[0]
        rows = self.block_rows(n_draws)
        x = np.asarray(x, dtype=float)
        parts = []
        with self._lock:
            for start in range(0, max(len(x), 1), rows):
                block = x[start : start + rows]
                outputs = np.asarray(self._fn(padded(block, rows), *weights))
                parts.append(outputs[:, : len(block)])
        return np.concatenate(parts, axis=1)


def is_prediction_table(path: Path) -> bool:
    """Whether path holds a table `pmbnn predict` wrote (its header says so)."""
    try:
        with path.open() as stream:
            names = stream.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return False
    if tuple(names[-len(CLASS_COLUMNS) :]) == CLASS_COLUMNS:  # a classifier's
        probabilities = names[: -len(CLASS_COLUMNS)]
        return bool(probabilities) and all(name.startswith("p_") for name in probabilities)
    quantiles = names[len(SUMMARY_COLUMNS) :]
    return tuple(names[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS and all(
        re.fullmatch(r"q\d\d", name) for name in quantiles
    )


PREDICTIONS = OutputKind("predictions table", folder=False, is_ours=is_prediction_table)


def padded(x: np.ndarray, rows: int) -> np.ndarray:
    """x with rows of zeros (the training mean, once standardized) appended up to `rows`."""
    if len(x) == rows:
        return x
    return np.concatenate([x, np.zeros((rows - len(x), *x.shape[1:]), dtype=x.dtype)])


def _layer_widths(model: pm.Model) -> list[int]:
    return [len(values) for dim, values in model.coords.items() if dim.startswith("unit_")]
