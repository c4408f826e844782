"""The fit pipeline: data -> spec -> model -> inference -> a FittedBnn and its Metrics.

`fit` does it all for a spec; `fit_split` for given training and test rows (the UCI bench, the
scikit-learn estimator), with a `Refitter` to reuse one compiled model across many fits.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr
from xarray import DataTree

from pmbnn.data import Dataset, Standardizer, constant_features, load_split
from pmbnn.errors import DataWarning
from pmbnn.evaluation import Metrics, evaluate
from pmbnn.families import family_of
from pmbnn.fitted import FittedBnn
from pmbnn.inference import CompiledInference
from pmbnn.inference.device import DeviceChoice, on_device
from pmbnn.inference.samplers import SamplerChoice
from pmbnn.model import BnnModel, build_model
from pmbnn.predict import NetworkFunction
from pmbnn.spec import Spec, load_spec
from pmbnn.trace import (
    INPUTS,
    LOG_LIKELIHOOD,
    OBSERVED,
    POSTERIOR,
    TARGET_DATA,
    TARGET_SCALE,
    TEST_DATA,
    n_samples,
    sample_dataarray,
)

# The pointwise log-likelihood (draws x training rows, for PSIS-LOO) is stored only up to this
# many values (80 MB); past it, LOO is skipped rather than making every run file huge.
MAX_LOG_LIKELIHOOD_VALUES = 10_000_000


def fit(spec: Spec | str | Path, progress: bool = False) -> tuple[FittedBnn, Metrics]:
    """Fit the BNN a spec declares to the data it names, and score it.

    Parameters
    ----------
    spec : Spec, or a TOML file's path or a built-in spec's name
        Network, prior, likelihood, data and inference settings (read by `load_spec` when
        given as a path or name).
    progress : bool, default False
        Show the sampler's or optimizer's progress bar.

    Returns
    -------
    fitted : FittedBnn
        Predicts with uncertainty (`FittedBnn.predict`); `save_run` writes it.
    metrics : Metrics
        Scores on the training rows and, when some were held out, on those.

    Raises
    ------
    PmbnnError
        Bad data or settings, named in the message; KeyboardInterrupt when interrupted (never a
        partial result).
    """
    clock = time.perf_counter()
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    data, train, test = load_split(spec.data, spec.inference.seed, family_of(spec.likelihood))
    return fit_split(spec, data, train, test, progress, {"data_s": time.perf_counter() - clock})


def fit_split(
    spec: Spec,
    data: Dataset,
    train: np.ndarray,
    test: np.ndarray,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    refitter: Refitter | None = None,
) -> tuple[FittedBnn, Metrics]:
    """Fit on the rows `train` of data (scaled by their statistics only), score on `test`.

    A `refitter` carried from fit to fit reuses the model compiled by the first one.
    """
    timings = dict(timings or {})
    sampler = None
    if spec.inference.method == "nuts":  # the run names the sampler that ran, not "auto"
        sampler = SamplerChoice.for_setting(spec.inference.sampler)
        spec = spec.with_overrides(inference={"sampler": sampler.name})
    constant = constant_features(data.x[train], data.feature_names)
    if constant:
        warnings.warn(
            f"feature(s) {', '.join(map(repr, constant))} are constant on the training rows: "
            "kept with scale 1, but they cannot inform the predictions",
            DataWarning,
            stacklevel=2,
        )
    family = family_of(spec.likelihood)
    y_train = family.transform(data.y[train])
    scaler = Standardizer.fit(data.x[train], y_train, spec.data.standardize, family.continuous)

    clock = time.perf_counter()
    refitter = refitter or Refitter()
    bnn, inference = refitter.model(
        spec, scaler.x(data.x[train]), scaler.y(y_train), data, scaler.y_scale
    )
    # Timed once per model (a refitter's splits share it); the run names the device that ran.
    refitter.device = refitter.device or DeviceChoice.for_setting(spec.inference, bnn)
    device = refitter.device
    spec = spec.with_overrides(inference={"device": device.name})
    with on_device(device):
        trace = inference.run(spec.inference, progress)
    timings["inference_s"] = time.perf_counter() - clock

    fitted = FittedBnn(
        spec,
        trace,
        scaler,
        data.feature_names,
        data.target,
        classes=data.classes,
        model=bnn,
        network=refitter.network,
    )
    clock = time.perf_counter()
    train_scores = evaluate(fitted, data.x[train], data.y[train])
    test_scores = evaluate(fitted, data.x[test], data.y[test]) if len(test) else None
    metrics = Metrics(train_scores, test_scores)
    attach_evaluation_data(fitted, data.x[test], data.y[test])
    refitter.network = fitted.network
    timings["evaluate_s"] = time.perf_counter() - clock
    fitted.meta = run_meta(spec, data, train, test, scaler, timings)
    if sampler is not None:
        fitted.meta["sampler"] = {"name": sampler.name, "chosen": sampler.reason}
    fitted.meta["device"] = {"name": device.name, "chosen": device.reason}
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
        self.device: DeviceChoice | None = None
        self.built_for: tuple | None = None  # what the model is built for (`_shape`)
        # Held for a whole fit by callers that share a Refitter between threads (the
        # scikit-learn estimator): one model's data cannot be swapped mid-fit.
        self.lock = threading.Lock()

    def model(
        self, spec: Spec, x: np.ndarray, y: np.ndarray, data: Dataset, target_scale: float
    ) -> tuple[BnnModel, CompiledInference]:
        built_for = _shape(spec, x, data)
        if self.bnn is None or self.inference is None or built_for != self.built_for:
            # New, or another network shape: its data cannot be swapped in (a classifier
            # refitted to labels with another number of classes needs other outputs).
            self.bnn = build_model(
                spec, x, y, data.feature_names, classes=data.classes, target_scale=target_scale
            )
            self.inference = CompiledInference(self.bnn)
            self.network, self.device, self.built_for = None, None, built_for
        else:
            coords = {"obs": np.arange(len(y)), "feature": data.feature_names}
            values = {INPUTS: x, TARGET_DATA: self.bnn.family.model_values(y)}
            if TARGET_SCALE in self.bnn.model.named_vars:  # a fixed noise sd's unit
                values[TARGET_SCALE] = np.asarray(target_scale)
            pm.set_data(values, model=self.bnn.model, coords=coords)
        return self.bnn, self.inference


def _shape(spec: Spec, x: np.ndarray, data: Dataset) -> tuple:
    """What a compiled model is specific to: the spec but its seed, the input width and the
    class labels (the outputs and their names)."""
    settings = spec.with_overrides(inference={"seed": 0}).model_dump_json(exclude={"data"})
    return settings, x.shape[1], None if data.classes is None else tuple(data.classes)


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
    fitted.trace[TEST_DATA] = DataTree(test)
    posterior = fitted.trace[POSTERIOR].to_dataset()
    x_train, y_train = fitted.training_data()
    if n_samples(posterior) * len(y_train) > MAX_LOG_LIKELIHOOD_VALUES:
        return
    log_lik = fitted.distribution(x_train).log_density(y_train)
    fitted.trace[LOG_LIKELIHOOD] = DataTree(
        xr.Dataset({OBSERVED: sample_dataarray(log_lik, posterior, ("obs",))})
    )


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
        "family": spec.likelihood.family,
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
