"""ADVI's optimizer loop, compiled K steps per call where a compiled loop is the faster one.

PyMC's ``pm.fit`` calls one compiled step per iteration from Python; on JAX that per-call
latency is a large share of a step (on a GPU, most of it). Here the same updates (the loss's
gradient, Adam, the random streams) run as a ``scan`` of `steps_per_call` steps, and Python
only looks in between: progress, NaN, the loss-plateau check at window boundaries, signals.
The steps are the same computation with the same random streams, so a scanned fit equals a
step-by-step one to rounding (tests/test_advi_steps.py).

Measured on the perf workload (1378 weights, 1000 rows, 2 cores; benchmarks/perf.py's ADVI
measurement, 2026-11-26): JAX 694 iterations/s as scans of 100 steps against 530 through
``pm.fit`` (NumPyro's SVI, one jitted loop: 582); numba's scan ran slower per step than its
single step (260 against 445 it/s, both cores loaded), so numba keeps one step per call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.pytensorf import collect_default_updates, resolve_backend_compile_kwargs
from pymc.pytensorf import compile as compile_pymc
from pytensor.compile.executor import Function
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomType
from rich.progress import Progress, TextColumn

STEPS_PER_CALL = {"jax": 100, "numba": 1}


class CompiledSteps:
    """Adam on the negative ELBO of one PyMC VI `inference`, compiled for `backend`.

    Two programs share the optimizer's state: one step per call, and a scan of
    `steps_per_call` steps; each is compiled on first use. `reset` puts every parameter and
    moment back where it was built and seeds the random streams, so runs repeat exactly.
    """

    def __init__(
        self,
        model: pm.Model,
        inference: pm.variational.Inference,
        learning_rate: pytensor.compile.SharedVariable,
        backend: str,
        steps_per_call: int | None = None,
    ):
        self.model = model
        with model:
            objective = inference.objective.updates(
                obj_optimizer=pm.adam(learning_rate=learning_rate)
            )
        self.loss = objective.loss
        self.random_updates = collect_default_updates(outputs=[self.loss, *objective.values()])
        self.updates = dict(objective) | self.random_updates
        self.streams = list(self.random_updates)  # seeding order: fixed by the graph
        self.mode = resolve_backend_compile_kwargs(backend, None)["mode"]
        self.steps_per_call = steps_per_call or STEPS_PER_CALL[backend]
        self.backend = backend
        self._initial = {
            v: v.get_value(borrow=False) for v in self.updates if not isinstance(v.type, RandomType)
        }
        self._programs: dict[int, Function] = {}
        self._generators: dict[Any, np.random.Generator] = {}
        self._last: Function | None = None

    def program(self, steps: int) -> Function:
        """The compiled program taking `steps` steps (1 or `steps_per_call`) and returning their
        losses, compiled on first use."""
        if steps not in self._programs:
            _forget_stack_traces([self.loss, *self.updates.values()])  # before scan copies them
            if steps == 1:
                losses, updates = self.loss[None], self.updates
            else:
                losses, updates = pytensor.scan(
                    lambda: (self.loss, self.updates), n_steps=steps, return_updates=True
                )
            _forget_stack_traces([losses, *updates.values()])
            # PyMC's rewrites (-inf for invalid parameters, in-place streams); JAX warns that
            # it copies the random streams, which `reset` and `take` seed and hand over.
            with self.model, warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The RandomType SharedVariables")
                self._programs[steps] = compile_pymc(
                    [], losses, random_seed=False, updates=updates, mode=self.mode
                )
            self._seed_program(self._programs[steps])
        return self._programs[steps]

    def reset(self, seed: int) -> None:
        """Every parameter and optimizer moment as built; random stream i seeded with
        (seed, 11, i) (the first with (seed, 11), as before minibatches added a second)."""
        for variable, value in self._initial.items():
            variable.set_value(np.copy(value))
        self._generators = {
            stream: np.random.default_rng([seed, 11, *([i] if i else [])])
            for i, stream in enumerate(self.streams)
        }
        self._last = None
        for program in self._programs.values():
            self._seed_program(program)

    def _seed_program(self, program: Function) -> None:
        for stream, container in _stream_storage(program, self.streams):
            generator = self._generators.get(stream)
            if generator is None:  # not reset yet
                continue
            container.storage[0] = _typify(generator) if self.backend == "jax" else generator

    def take(self, steps: int) -> np.ndarray:
        """Take `steps` (1 or `steps_per_call`) steps; their losses, before each update."""
        program = self.program(steps)
        if self._last is not None and self._last is not program:
            # JAX programs keep private copies of the random streams: hand the state over.
            previous = dict(_stream_storage(self._last, self.streams))
            for stream, container in _stream_storage(program, self.streams):
                container.storage[0] = previous[stream].storage[0]
        self._last = program
        return np.asarray(program(), dtype=float)


def optimize(
    steps: CompiledSteps,
    iterations: int,
    window: int,
    stop_after_window: Callable[[np.ndarray], bool],
    progress: bool,
    method: str,
) -> np.ndarray:
    """Run up to `iterations` steps: whole scans, single steps up to each multiple of `window`,
    where `stop_after_window(losses so far)` may end the fit. Returns the losses taken."""
    losses = np.empty(iterations)
    done = 0
    columns = (*Progress.get_default_columns(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task(method, total=iterations, loss="")
        while done < iterations:
            boundary = min(iterations, (done // window + 1) * window)
            while done < boundary:
                count = steps.steps_per_call if boundary - done >= steps.steps_per_call else 1
                losses[done : done + count] = steps.take(count)
                done += count
                if np.isnan(losses[done - count : done]).any():
                    raise FloatingPointError(f"{method}: the loss became NaN at step {done}")
                if progress and done % 100 == 0:
                    recent = np.mean(losses[max(0, done - window) : done])
                    bar.update(task, completed=done, loss=f"loss {recent:,.5g}")
            if done % window == 0 and stop_after_window(losses[:done]):
                break
    return losses[:done]


def _forget_stack_traces(outputs: list) -> None:
    """Drop the creation stack traces PyTensor keeps on every variable of the graph.

    Its rewrites append the traces of a replaced variable to its replacement, and variables
    outlive a compilation (the model's, shared by every fit of a reused model): measured in
    the test suite, many fits of one cached scikit-learn model grew a compilation to 24 GB
    inside `local_useless_switch`'s `copy_stack_trace`. The traces only decorate PyTensor's
    error messages.
    """
    for variable in ancestors(outputs):
        variable.tag.__dict__.pop("trace", None)


def _stream_storage(program: Function, streams: list) -> list[tuple[Any, Any]]:
    return [
        (In.variable, container)
        for In, container in zip(program.maker.inputs, program.input_storage, strict=True)
        if In.variable in streams
    ]


def _typify(generator: np.random.Generator) -> object:
    """A numpy generator in the form JAX-compiled PyTensor functions keep their streams in."""
    from pytensor.link.jax.dispatch import jax_typify

    return jax_typify(generator)
