"""Posterior draws + new inputs -> predictive mean, sd (epistemic / aleatoric), intervals.

The network is never written here: the model's own output expression is vectorised over a
leading draw axis (``vectorize_graph``) and compiled once, so one call evaluates every draw on a
block of inputs. The posterior predictive for each input is the mixture over draws s of
Normal(f_s(x), sigma_s^2); its moments and quantiles are computed exactly for that mixture.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import graph_replace, vectorize_graph

from pmbnn.files import OutputKind
from pmbnn.inference.compile_target import compile_target
from pmbnn.mixture import mixture_quantiles
from pmbnn.model import BnnModel
from pmbnn.trace import FUNCTION, NOISE, flat_draws, n_samples, sample_dataarray

DEFAULT_LEVELS = (0.05, 0.95)
SUMMARY_COLUMNS = ("mean", "sd_total", "sd_epistemic", "sd_aleatoric")  # then q05, q95, ...
# Elements of the largest (draws x inputs x units) block evaluated at once: about 256 MB.
BLOCK_ELEMENTS = 32_000_000


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

    def __call__(self, posterior: xr.Dataset, x: np.ndarray) -> np.ndarray:
        """Network outputs, shape (draws, inputs), draws flattened chain-major."""
        weights = [flat_draws(posterior[name]) for name in self.weight_names]
        n_draws = weights[0].shape[0]
        block = max(1, BLOCK_ELEMENTS // (n_draws * self._widest))
        x = np.asarray(x, dtype=float)
        with self._lock:
            parts = [
                np.asarray(self._fn(x[i : i + block], *weights)) for i in range(0, len(x), block)
            ]
        return np.concatenate(parts, axis=1) if parts else np.empty((n_draws, 0))


@dataclass(frozen=True)
class Prediction:
    """Posterior predictive summaries for each input, in the target's original units.

    Attributes
    ----------
    mean : ndarray
        Predictive mean.
    sd_epistemic, sd_aleatoric, sd_total : ndarray
        The spread of the network's output over draws (what more data would shrink), the
        noise (sqrt of E[sigma^2]), and both together (law of total variance).
    quantiles : dict of float to ndarray
        Exact quantiles of the predictive mixture at the requested levels.
    function_draws : DataArray
        The network's output per draw, dims (chain, draw, obs).
    """

    mean: np.ndarray
    sd_epistemic: np.ndarray  # spread of f(x) over draws: what more data would shrink
    sd_aleatoric: np.ndarray  # sqrt of E[sigma^2]: noise the data itself carries
    sd_total: np.ndarray  # sqrt of the sum of both variances (law of total variance)
    quantiles: dict[float, np.ndarray]  # level -> central interval bound of y
    function_draws: xr.DataArray  # f(x) per draw, dims (chain, draw, obs)

    def to_frame(self) -> pd.DataFrame:
        summaries = (self.mean, self.sd_total, self.sd_epistemic, self.sd_aleatoric)
        columns = dict(zip(SUMMARY_COLUMNS, summaries, strict=True))
        columns |= {f"q{round(level * 100):02d}": q for level, q in self.quantiles.items()}
        return pd.DataFrame(columns)


def is_prediction_table(path: Path) -> bool:
    """Whether path holds a table `pmbnn predict` wrote (its header says so)."""
    try:
        with path.open() as stream:
            names = stream.readline().rstrip("\r\n").split(",")
    except (OSError, UnicodeDecodeError):
        return False
    quantiles = names[len(SUMMARY_COLUMNS) :]
    return tuple(names[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS and all(
        re.fullmatch(r"q\d\d", name) for name in quantiles
    )


PREDICTIONS = OutputKind("predictions table", folder=False, is_ours=is_prediction_table)


def noise_draws(posterior: xr.Dataset, fixed_sigma: float | None) -> np.ndarray:
    """sigma per draw (flattened), or the fixed value repeated."""
    if fixed_sigma is not None:
        return np.full(n_samples(posterior), float(fixed_sigma))
    return flat_draws(posterior[NOISE])


def summarize(
    f: np.ndarray,
    noise_sd: np.ndarray,
    posterior: xr.Dataset,
    levels: tuple[float, ...] = DEFAULT_LEVELS,
) -> Prediction:
    """Moments and quantiles of the mixture over draws of Normal(f_s, sigma_s^2)."""
    mean = f.mean(axis=0)
    var_epistemic = f.var(axis=0)
    var_aleatoric = np.full_like(mean, np.mean(noise_sd**2))
    draws = sample_dataarray(f, posterior, ("obs",)).rename(FUNCTION)
    return Prediction(
        mean=mean,
        sd_epistemic=np.sqrt(var_epistemic),
        sd_aleatoric=np.sqrt(var_aleatoric),
        sd_total=np.sqrt(var_epistemic + var_aleatoric),
        quantiles=dict(zip(levels, mixture_quantiles(f, noise_sd, levels), strict=True)),
        function_draws=draws,
    )


def _layer_widths(model: pm.Model) -> list[int]:
    return [len(values) for dim, values in model.coords.items() if dim.startswith("unit_")]
