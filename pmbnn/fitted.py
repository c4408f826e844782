"""The fit pipeline and its result: data -> spec -> model -> inference -> a FittedBnn.

A FittedBnn holds only data (spec, trace, scaling); the PyMC model and the compiled forward pass
are rebuilt from the spec and the trace on first use, so a reloaded run is the same object.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from xarray import DataTree

from pmbnn.data import (
    Dataset,
    Standardizer,
    constant_features,
    load_dataset,
    numeric_columns,
    split_indices,
)
from pmbnn.errors import DataWarning, PmbnnError
from pmbnn.inference import CompiledInference
from pmbnn.model import INPUTS, OBSERVED, TARGET_DATA, BnnModel, build_model
from pmbnn.predict import (
    DEFAULT_LEVELS,
    NetworkFunction,
    Prediction,
    log_predictive_density,
    noise_draws,
    pointwise_log_likelihood,
    summarize,
)
from pmbnn.spec import Spec

TEST_GROUP = "test_data"
LOG_LIKELIHOOD_GROUP = "log_likelihood"
# The pointwise log-likelihood (draws x training rows, for PSIS-LOO) is stored only up to this
# many values (80 MB); past it, LOO is skipped rather than making every run file huge.
MAX_LOG_LIKELIHOOD_VALUES = 10_000_000


@dataclass
class FittedBnn:
    """A fitted BNN: predicts in the target's original units from raw (unscaled) inputs."""

    spec: Spec
    trace: DataTree
    scaler: Standardizer
    feature_names: list[str]
    target: str
    meta: dict = field(default_factory=dict)

    @cached_property
    def model(self) -> BnnModel:
        """The PyMC model the trace came from, rebuilt on the stored (scaled) training data."""
        x = self.trace["constant_data"][INPUTS].values
        y = self.trace["observed_data"][OBSERVED].values
        return build_model(self.spec, x, y, self.feature_names)

    @cached_property
    def network(self) -> NetworkFunction:
        return NetworkFunction(self.model)

    @property
    def posterior(self):
        return self.trace["posterior"].to_dataset()

    def input_matrix(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """x as the (rows, features) float matrix the network takes, checked.

        A DataFrame's columns are found by name, in any order, extra columns ignored (as
        ``pmbnn predict`` does); an array must have the fitted features as its columns, in
        order. Anything else is a PmbnnError naming the problem.
        """
        if isinstance(x, pd.DataFrame):
            frame = x.rename(columns=str)
            return numeric_columns(frame, self.feature_names, "the DataFrame", "predict")
        array = np.asarray(x)
        n = len(self.feature_names)
        if array.ndim != 2 or array.shape[1] != n:
            raise PmbnnError(
                f"x has shape {array.shape}; the run was fitted on {n} feature(s) "
                f"({', '.join(self.feature_names)}): pass a (rows, {n}) array in that order, "
                "or a DataFrame with those columns"
            )
        if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
            raise PmbnnError(f"x holds {array.dtype} values; the run needs numbers")
        array = array.astype(float)
        if not np.isfinite(array).all():
            row = int(np.nonzero(~np.isfinite(array).all(axis=1))[0][0])
            raise PmbnnError(f"x has a missing or infinite value in row {row}; fill it or drop it")
        return array

    def draws(self, x: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f per draw and input, sigma per draw), both in the target's original units."""
        f_scaled = self.network(self.posterior, self.scaler.x(self.input_matrix(x)))
        sigma_scaled = noise_draws(self.posterior, self.model.fixed_sigma)
        scale = self.scaler.y_scale
        return f_scaled * scale + self.scaler.y_mean, sigma_scaled * scale

    def predict(
        self, x: pd.DataFrame | np.ndarray, levels: tuple[float, ...] = DEFAULT_LEVELS
    ) -> Prediction:
        """Predictive mean, sds and interval bounds for each row of x (see `input_matrix`)."""
        f, sigma = self.draws(x)
        prediction = summarize(f, sigma, self.posterior, levels)
        summaries = np.column_stack(
            [prediction.mean, prediction.sd_total, *prediction.quantiles.values()]
        )
        finite = np.isfinite(summaries).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            distance = np.abs(self.scaler.x(self.input_matrix(x)[row])).max()
            raise PmbnnError(
                f"the prediction for input row {row} (counting from 0) is not finite (the "
                f"input is {distance:.3g} training sds from the training mean): an input that "
                "far, or a fit that diverged, overflows float64; nothing was written"
            )
        return prediction

    def log_predictive_density(self, x: pd.DataFrame | np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pointwise log p(y | x, data) in original units, averaged over draws."""
        f, sigma = self.draws(x)
        return log_predictive_density(f, sigma, np.asarray(y, dtype=float))

    @property
    def n_chains(self) -> int:
        return self.trace["posterior"].sizes["chain"]

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows the model was fitted on, in original units."""
        x = self.trace["constant_data"][INPUTS].values
        y = self.trace["observed_data"][OBSERVED].values
        return self.scaler.x_original(x), self.scaler.y_original(y)

    def test_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out rows stored with the run (original units), or None if there were none."""
        if TEST_GROUP not in self.trace.children or not self.trace[TEST_GROUP].sizes.get(
            "test_obs"
        ):
            return None
        group = self.trace[TEST_GROUP]
        return group[INPUTS].values, group[OBSERVED].values


def attach_evaluation_data(fitted: FittedBnn, x_test: np.ndarray, y_test: np.ndarray) -> None:
    """Store the test split and, when small enough, the training pointwise log-likelihood.

    Both make a run self-contained for diagnostics and reports: the test split for calibration
    and function-space probes, the log-likelihood for PSIS-LOO (ArviZ's ``log_likelihood``
    group, in original units so that LOO's elpd is comparable with the test log density).
    """
    test = xr.Dataset(
        {INPUTS: (("test_obs", "feature"), x_test), OBSERVED: ("test_obs", y_test)},
        coords={"test_obs": np.arange(len(y_test)), "feature": fitted.feature_names},
        attrs={"units": "original"},
    )
    fitted.trace[TEST_GROUP] = DataTree(test)
    posterior = fitted.trace["posterior"]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    x_train, y_train = fitted.training_data()
    if n_chain * n_draw * len(y_train) > MAX_LOG_LIKELIHOOD_VALUES:
        return
    f, sigma = fitted.draws(x_train)
    log_lik = pointwise_log_likelihood(f, sigma, y_train).reshape(n_chain, n_draw, -1)
    fitted.trace[LOG_LIKELIHOOD_GROUP] = DataTree(
        xr.Dataset(
            {OBSERVED: (("chain", "draw", "obs"), log_lik)},
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values},
        )
    )


def fit(spec: Spec, progress: bool = False) -> tuple[FittedBnn, dict]:
    """Load the spec's data, split it, fit, and evaluate; returns the fitted BNN and metrics."""
    seed = spec.inference.seed
    clock = time.perf_counter()
    data = load_dataset(spec.data, seed)
    train, test = split_indices(len(data.y), spec.data.test_fraction, seed)
    return fit_split(spec, data, train, test, progress, {"data_s": time.perf_counter() - clock})


def fit_split(
    spec: Spec,
    data: Dataset,
    train: np.ndarray,
    test: np.ndarray,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    refitter: Refitter | None = None,
) -> tuple[FittedBnn, dict]:
    """Fit on the rows `train` of data (scaled by their statistics only), evaluate on `test`.

    A `refitter` carried from fit to fit reuses the model compiled by the first one.
    """
    timings = dict(timings or {})
    constant = constant_features(data.x[train], data.feature_names)
    if constant:
        warnings.warn(
            f"feature(s) {', '.join(map(repr, constant))} are constant on the training rows: "
            "kept with scale 1, but they cannot inform the predictions",
            DataWarning,
            stacklevel=2,
        )
    scaler = Standardizer.fit(data.x[train], data.y[train], spec.data.standardize)

    clock = time.perf_counter()
    refitter = refitter or Refitter()
    bnn, inference = refitter.model(spec, scaler.x(data.x[train]), scaler.y(data.y[train]), data)
    trace = inference.run(spec.inference, progress)
    timings["inference_s"] = time.perf_counter() - clock

    fitted = FittedBnn(spec, trace, scaler, data.feature_names, data.target)
    fitted.__dict__["model"] = bnn  # reuse the built model instead of rebuilding it
    if refitter.network is not None:
        fitted.__dict__["network"] = refitter.network
    clock = time.perf_counter()
    metrics = evaluate(fitted, data, train, test)
    attach_evaluation_data(fitted, data.x[test], data.y[test])
    refitter.network = fitted.network
    timings["evaluate_s"] = time.perf_counter() - clock
    fitted.meta = run_meta(spec, data, train, test, scaler, timings)
    return fitted, metrics


class Refitter:
    """One spec's model and its compiled programs, refitted to many row subsets of a dataset.

    The first fit builds and compiles; later fits only swap the data (``pm.set_data``). The
    UCI bench uses one per worker process. A FittedBnn from an earlier fit shares the model,
    whose data the next fit replaces: use each result before fitting again.
    """

    def __init__(self) -> None:
        self.bnn: BnnModel | None = None
        self.inference: CompiledInference | None = None
        self.network: NetworkFunction | None = None

    def model(
        self, spec: Spec, x: np.ndarray, y: np.ndarray, data: Dataset
    ) -> tuple[BnnModel, CompiledInference]:
        if self.bnn is None or self.inference is None:
            self.bnn = build_model(spec, x, y, data.feature_names)
            self.inference = CompiledInference(self.bnn)
        else:
            pm.set_data(
                {INPUTS: x, TARGET_DATA: y}, model=self.bnn.model, coords={"obs": np.arange(len(y))}
            )
        return self.bnn, self.inference


def evaluate(fitted: FittedBnn, data: Dataset, train: np.ndarray, test: np.ndarray) -> dict:
    """Train RMSE and, when there is a test split, test RMSE, mean log density and coverage."""
    metrics: dict = {"n_train": len(train), "n_test": len(test)}
    metrics["train_rmse"] = rmse(fitted.predict(data.x[train]).mean, data.y[train])
    if len(test):
        prediction = fitted.predict(data.x[test])
        y = data.y[test]
        metrics["test_rmse"] = rmse(prediction.mean, y)
        metrics["test_lpd"] = float(fitted.log_predictive_density(data.x[test], y).mean())
        lower, upper = prediction.quantiles[0.05], prediction.quantiles[0.95]
        metrics["test_coverage_90"] = float(np.mean((y >= lower) & (y <= upper)))
    broken = [name for name, value in metrics.items() if not np.isfinite(value)]
    if broken:
        raise PmbnnError(
            f"the fit gave a non-finite {broken[0]}: inference diverged on this data; check "
            "its scale, or lower [inference].learning_rate (ADVI); nothing was written"
        )
    return metrics


def rmse(prediction: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - y) ** 2)))


def run_meta(
    spec: Spec,
    data: Dataset,
    train: np.ndarray,
    test: np.ndarray,
    scaler: Standardizer,
    timings: dict[str, float],
) -> dict:
    """What a run needs to be reproduced and compared: versions, seed, data, scaling, timings."""
    from importlib.metadata import version
    from platform import python_version

    packages = ["pmbnn", "pymc", "pytensor", "arviz-base", "arviz-stats", "numpy", "xarray"]
    return {
        "versions": {"python": python_version()} | {p: version(p) for p in packages},
        "seed": spec.inference.seed,
        "method": spec.inference.method,
        "data": {
            "source": data.source,
            "fingerprint_sha256": data.fingerprint,
            "rows": len(data.y),
            "n_train": len(train),
            "n_test": len(test),
            "features": data.feature_names,
            "target": data.target,
        },
        "standardization": scaler.to_dict(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
