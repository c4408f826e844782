"""The fit pipeline and its result: data -> spec -> model -> inference -> a FittedBnn.

A FittedBnn holds only data (spec, trace, scaling); the PyMC model and the compiled forward pass
are rebuilt from the spec and the trace on first use, so a reloaded run is the same object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from xarray import DataTree

from pmbnn.data import Dataset, Standardizer, load_dataset, split_indices
from pmbnn.inference import run_inference
from pmbnn.model import INPUTS, OBSERVED, BnnModel, build_model
from pmbnn.predict import (
    DEFAULT_LEVELS,
    NetworkFunction,
    Prediction,
    log_predictive_density,
    noise_draws,
    summarize,
)
from pmbnn.spec import Spec


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

    def draws(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f per draw and input, sigma per draw), both in the target's original units."""
        f_scaled = self.network(self.posterior, self.scaler.x(np.asarray(x, dtype=float)))
        sigma_scaled = noise_draws(self.posterior, self.model.fixed_sigma)
        scale = self.scaler.y_scale
        return f_scaled * scale + self.scaler.y_mean, sigma_scaled * scale

    def predict(self, x: np.ndarray, levels: tuple[float, ...] = DEFAULT_LEVELS) -> Prediction:
        """Predictive mean, sds and interval bounds for each row of x (rows x features)."""
        f, sigma = self.draws(x)
        return summarize(f, sigma, self.posterior, levels)

    def log_predictive_density(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pointwise log p(y | x, data) in original units, averaged over draws."""
        f, sigma = self.draws(x)
        return log_predictive_density(f, sigma, np.asarray(y, dtype=float))


def fit(spec: Spec, progress: bool = False) -> tuple[FittedBnn, dict]:
    """Load the spec's data, fit, and evaluate; returns the fitted BNN and its metrics."""
    seed = spec.inference.seed
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    data = load_dataset(spec.data, seed)
    train, test = split_indices(len(data.y), spec.data.test_fraction, seed)
    scaler = Standardizer.fit(data.x[train], data.y[train], spec.data.standardize)
    timings["data_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    bnn = build_model(spec, scaler.x(data.x[train]), scaler.y(data.y[train]), data.feature_names)
    trace = run_inference(bnn, spec.inference, progress)
    timings["inference_s"] = time.perf_counter() - clock

    fitted = FittedBnn(spec, trace, scaler, data.feature_names, data.target)
    fitted.__dict__["model"] = bnn  # reuse the built model instead of rebuilding it
    clock = time.perf_counter()
    metrics = evaluate(fitted, data, train, test)
    timings["evaluate_s"] = time.perf_counter() - clock
    fitted.meta = run_meta(spec, data, train, test, scaler, timings)
    return fitted, metrics


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
