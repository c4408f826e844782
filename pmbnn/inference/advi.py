"""Mean-field and full-rank ADVI (PyMC's objective, pmbnn's compiled loop), stopped by a
loss-plateau check."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import xarray as xr
from threadpoolctl import threadpool_limits
from xarray import DataTree

from pmbnn.errors import PmbnnError
from pmbnn.inference.advi_steps import CompiledSteps, optimize
from pmbnn.inference.compile_target import compile_target
from pmbnn.interrupts import raise_if_interrupted
from pmbnn.loss import PLATEAU_Z, plateau_z
from pmbnn.model import BnnModel, minibatch_model
from pmbnn.spec import InferenceSpec
from pmbnn.trace import INPUTS, TARGET_DATA, TARGET_SCALE, VI_APPROXIMATION, VI_LOSS

MIN_WINDOW = 500
# Initial posterior sd of every weight. A wide start (PyMC's default is about 0.7, far above
# fan-in prior sds) lets mean-field ADVI fall into the "all noise" optimum where sigma ~ 1 on
# standardized targets; a narrow start reaches the data-fitting optimum. Measured on the sine-gap
# example: learned sigma 1.07 with the default start, 0.22 with 0.01 (noise truth about 0.14).
START_SD = 0.01


class LossPlateau:
    """Reduce-on-plateau schedule and convergence check in one.

    Every `window` iterations the mean loss of the last window is compared with the window
    before; "no lower" means within PLATEAU_Z standard errors of the difference, so ELBO noise
    is not mistaken for progress. On a plateau the learning rate is divided by 10, which removes the
    optimizer's own noise from the final approximation; after `decays` such cuts the next
    plateau stops the fit and counts as converged.
    """

    def __init__(
        self, window: int, learning_rate: pytensor.compile.SharedVariable, decays: int = 3
    ):
        self.window = window
        self.learning_rate = learning_rate
        self.decays = decays
        self.reset()

    def reset(self) -> None:
        self.decays_left = self.decays
        self.converged_at: int | None = None

    def stop_after_window(self, losses: np.ndarray) -> bool:
        """Called at each multiple of `window` iterations: True ends the fit (converged)."""
        iteration = len(losses)
        if iteration < 2 * self.window or plateau_z(losses, self.window) >= PLATEAU_Z:
            return False
        if self.decays_left == 0:
            self.converged_at = iteration
            return True
        self.decays_left -= 1
        self.learning_rate.set_value(self.learning_rate.get_value() / 10.0)
        return False


class AdviProgram:
    """ADVI for one model, compiled once and rerunnable from a fresh start.

    The compiled steps read the model's data from shared variables, so after
    ``pm.set_data`` the same program fits new rows of the same width (the UCI bench refits
    each split this way: one compilation per process, not per split). Every run restores the
    optimizer to its initial state and starts q from the model's initial point for its seed.

    With ``batch_size`` (fewer than the rows), q is fitted on a minibatch copy of the model
    (`minibatch_model`) that shares the free variables' names, so the draws predict through the
    full-data model like any others. `steps_per_call` overrides the backend's measured default
    (`advi_steps.STEPS_PER_CALL`); the result does not depend on it.
    """

    def __init__(
        self,
        bnn: BnnModel,
        settings: InferenceSpec,
        full_rank: bool,
        steps_per_call: int | None = None,
    ):
        self.bnn, self.full_rank = bnn, full_rank
        self.rows = len(bnn.model[TARGET_DATA].get_value())
        batch_size = settings.batch_size
        self.batch_size = batch_size if batch_size is not None and batch_size < self.rows else None
        # Separate from bnn: the minibatch likelihood is stochastic and scaled, fit for ADVI's
        # gradient only, not for log densities the diagnostics evaluate.
        self.training = bnn if self.batch_size is None else minibatch_model(bnn, self.batch_size)
        self.method = "fullrank_advi" if full_rank else "advi"
        self.backend = compile_target(settings.backend)
        self.window = max(MIN_WINDOW, settings.iterations // 20)
        self.learning_rate = pytensor.shared(
            np.asarray(settings.learning_rate, dtype=float), "learning_rate"
        )
        self.plateau = LossPlateau(self.window, self.learning_rate)
        with self.training.model:
            start = self.training.model.initial_point(random_seed=settings.seed)
            if full_rank:
                inference = pm.FullRankADVI(start=start, random_seed=settings.seed)
                (l_tril,) = (p for p in inference.approx.params if p.name == "L_tril")
                l_tril.set_value(l_tril.get_value() * START_SD)
            else:
                start_sd = {name: np.full(np.size(v), START_SD) for name, v in start.items()}
                inference = pm.ADVI(start=start, start_sigma=start_sd, random_seed=settings.seed)
        self.inference = inference
        with warnings.catch_warnings():
            # JAX skips shape asserts that the model's construction already guarantees.
            warnings.filterwarnings("ignore", "Skipping Assert")
            self.steps = CompiledSteps(
                self.training.model, inference, self.learning_rate, self.backend, steps_per_call
            )
            # Compile (JIT: on the first call) the program the first window runs; run() resets.
            first = min(self.window, settings.iterations)
            self.steps.reset(settings.seed)
            self.steps.take(self.steps.steps_per_call if first >= self.steps.steps_per_call else 1)
        self._data = [self.training.inputs, self.training.model[TARGET_DATA]]

    def run(self, settings: InferenceSpec, progress: bool) -> tuple[Any, np.ndarray]:
        """Fit from the initial state on the model's current data: (approximation, losses)."""
        if self.training is not self.bnn:  # the minibatch model: the full model's data
            names = [
                n for n in (INPUTS, TARGET_DATA, TARGET_SCALE) if n in self.bnn.model.named_vars
            ]
            data = {name: self.bnn.model[name].get_value() for name in names}
            pm.set_data(data, model=self.training.model)
        self.steps.reset(settings.seed)
        self._set_start(settings.seed)
        self.learning_rate.set_value(np.asarray(settings.learning_rate, dtype=float))
        self.plateau.reset()
        host_data = [variable.get_value(borrow=True) for variable in self._data]
        if self.backend == "jax":
            # Given numpy arrays, a JAX-compiled program copies them to the device on every
            # call (measured: 23 ms an iteration with 10^6 rows, against 0.2 ms once they are
            # device arrays).
            for variable, array in zip(self._data, host_data, strict=True):
                variable.container.storage[0] = to_device(array)
        try:
            # One BLAS thread: the network's matrices are small, and OpenBLAS's second thread
            # stalls when another process keeps a core busy (measured with both cores loaded:
            # 180-240 iterations/s with two threads, 560-590 with one; unloaded both ~900).
            with threadpool_limits(1), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Skipping Assert")
                losses = optimize(
                    self.steps,
                    settings.iterations,
                    self.window,
                    self.plateau.stop_after_window,
                    progress,
                    self.method,
                )
        except FloatingPointError:
            raise PmbnnError(
                f"{self.method} diverged (the loss became NaN); lower "
                f"[inference].learning_rate (now {settings.learning_rate})"
            ) from None
        finally:
            # The data's shared variables are the model's: give them their numpy arrays back.
            for variable, array in zip(self._data, host_data, strict=True):
                variable.container.storage[0] = array
        for param in self.inference.approx.params:
            # JAX leaves read-only device arrays behind, which numba-compiled sampling rejects.
            param.set_value(np.array(param.get_value()))
        if self.batch_size is not None:
            # PyMC reports a minibatch loss divided by rows / batch_size; store the full-data scale.
            losses = losses * (self.rows / self.batch_size)
        raise_if_interrupted()
        return self.inference.approx, losses

    def _set_start(self, seed: int) -> None:
        """q's mean at the model's initial point for this seed (prior draws, see model.py)."""
        start = self.training.model.initial_point(random_seed=seed)
        (group,) = self.inference.approx.groups
        mean = np.empty(group.ddim)
        for name, block, *_ in group.ordering.values():
            mean[block] = np.ravel(start[name])
        (mu,) = (p for p in self.inference.approx.params if p.name == "mu")
        mu.set_value(mean)


def to_device(array: np.ndarray) -> object:
    """A JAX device array, which a JAX-compiled PyTensor function reads without copying."""
    import jax

    return jax.device_put(array)


def fit_advi(
    bnn: BnnModel,
    settings: InferenceSpec,
    full_rank: bool,
    progress: bool,
    program: AdviProgram | None = None,
) -> DataTree:
    """Fit a Gaussian approximation with Adam, then draw `settings.draws` from it.

    Draws are stored as one chain, the layout of a NUTS trace; the loss (negative ELBO) per
    iteration goes to the ``vi_loss`` group with the convergence verdict in its attributes.
    A compiled `program` for this model may be passed in to skip compilation.
    """
    program = program or AdviProgram(bnn, settings, full_rank)
    approx, losses = program.run(settings, progress)
    with bnn.model:
        trace = approx.sample(settings.draws, random_seed=settings.seed + 1)
    loss = xr.Dataset(
        {"loss": ("iteration", losses)},
        coords={"iteration": np.arange(1, len(losses) + 1)},
        attrs={
            "method": program.method,
            "backend": program.backend,
            "max_iterations": settings.iterations,
            "converged": int(program.plateau.converged_at is not None),
            "window": program.window,
            "learning_rate": settings.learning_rate,
            "final_learning_rate": float(program.learning_rate.get_value()),
        },
    )
    trace[VI_LOSS] = DataTree(loss)
    trace[VI_APPROXIMATION] = DataTree(_approximation_dataset(approx, bnn, full_rank))
    return trace


def _approximation_dataset(approx: Any, bnn: BnnModel, full_rank: bool) -> xr.Dataset:
    """The fitted Gaussian q over the flat unconstrained parameter vector, as plain arrays.

    Stored so that diagnostics can evaluate log q at the draws (Pareto k-hat of p/q) without the
    optimizer. ``ordering`` lists (value variable, model variable, start, stop) of each block.
    """
    (group,) = approx.groups
    value_to_rv = {bnn.model.rvs_to_values[rv].name: rv.name for rv in bnn.model.free_RVs}
    ordering = [
        [value_name, value_to_rv[value_name], block.start, block.stop]
        for value_name, block, *_ in group.ordering.values()
    ]
    variables: dict[str, tuple] = {"mean": ("flat_param", group.mean.eval())}
    if full_rank:
        variables["cholesky"] = (("flat_param", "flat_param_col"), group.L.eval())
    else:
        variables["sd"] = ("flat_param", group.std.eval())
    return xr.Dataset(
        variables,
        attrs={
            "family": "full_rank" if full_rank else "mean_field",
            "ordering": json.dumps(ordering),
        },
    )
