"""The NUTS implementations pmbnn runs, one small object each: what it needs installed, the
options it gives `pm.sample`, and the context it samples in.

All four sample the same PyMC model and return the same trace layout (`nuts.py`); adding one
is adding an entry to SAMPLERS.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import pymc as pm
from threadpoolctl import threadpool_limits
from xarray import DataTree

from pmbnn.errors import MissingExtraError
from pmbnn.inference.compile_target import JAX_EXTRA, compile_target, use_all_cpu_cores_for_jax
from pmbnn.interrupts import child_process_context
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Sampler:
    """A NUTS implementation behind ``pm.sample(nuts_sampler=name)``."""

    name: str
    modules: tuple[str, ...] = ()  # what it imports; all come with the jax extra

    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def require(self) -> None:
        """MissingExtraError (an ImportError) naming the install command, if not installed."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingExtraError(
                f"the {self.name} sampler needs {', '.join(missing)}, which is not installed: "
                f"run {JAX_EXTRA} (or choose --sampler pymc)"
            )

    def options(self, bnn: BnnModel, settings: InferenceSpec, step: object) -> dict:
        """Keyword arguments for pm.sample beyond those every sampler takes."""
        return {"nuts": {"target_accept": settings.target_accept}}

    def context(self, cores: int) -> AbstractContextManager:
        return nullcontext()


class PymcSampler(Sampler):
    """PyMC's own NUTS: chains in processes, the model compiled by PyTensor's default (numba)."""

    def build_step(self, bnn: BnnModel, settings: InferenceSpec) -> pm.NUTS:
        """The compiled step, reusable across fits of the same model."""
        with bnn.model:
            return pm.NUTS(target_accept=settings.target_accept)

    def options(self, bnn: BnnModel, settings: InferenceSpec, step: object) -> dict:
        # Forking a process in which JAX runs threads (an earlier ADVI fit, a JAX sampler)
        # can deadlock the chains; start them from a clean server process instead. Either way
        # the chain processes die with this one, even when it is killed outright.
        start_method = "forkserver" if "jax" in sys.modules else "fork"
        return {
            "step": step or self.build_step(bnn, settings),
            "initvals": jittered_starts(bnn.model, settings.chains, settings.seed),
            "mp_ctx": child_process_context(start_method),
        }

    def context(self, cores: int) -> AbstractContextManager:
        return one_blas_thread_per_process() if cores > 1 else nullcontext()


class NutpieSampler(Sampler):
    """nutpie (Rust), calling the model as compiled for the run's compile target."""

    def options(self, bnn: BnnModel, settings: InferenceSpec, step: object) -> dict:
        options = super().options(bnn, settings, step)
        if compile_target(settings.backend) == "jax":
            # nutpie's threads call the JAX-compiled density: on the perf workload 3851
            # gradients/s against 460 through numba.
            options["compile_kwargs"] = {"backend": "jax", "gradient_backend": "jax"}
        return options


class JaxSampler(Sampler):
    """NumPyro: the whole sampler compiled to JAX with the model."""

    def options(self, bnn: BnnModel, settings: InferenceSpec, step: object) -> dict:
        use_all_cpu_cores_for_jax()
        import jax

        # One chain per device when there are enough (CPU cores, or GPUs), else all in one.
        parallel = jax.local_device_count() >= settings.chains
        return {
            "nuts": {
                "target_accept": settings.target_accept,
                "chain_method": "parallel" if parallel else "vectorized",
            }
        }


class BlackjaxSampler(JaxSampler):
    """BlackJAX's NUTS with the Fisher-divergence metric (`blackjax_nuts.py`), not through
    pm.sample, whose BlackJAX path adapts Stan's draws-only metric."""

    def sample(
        self, bnn: BnnModel, settings: InferenceSpec, options: dict, progress: bool
    ) -> DataTree:
        from pmbnn.inference.blackjax_nuts import sample_blackjax

        parallel = options["nuts"]["chain_method"] == "parallel"
        return sample_blackjax(bnn.model, settings, parallel, progress)


SAMPLERS: dict[str, Sampler] = {
    sampler.name: sampler
    for sampler in (
        PymcSampler("pymc"),
        NutpieSampler("nutpie", ("nutpie", "numba")),
        JaxSampler("numpyro", ("jax", "numpyro")),
        BlackjaxSampler("blackjax", ("jax", "blackjax")),
    )
}


# NUTS ESS/s relative to the NumPyro reference on the perf workload; sampler = "auto" takes
# the first installed, in this order. From reports/benchmarks/perf.json (full run, 2026-11-26,
# 2-core CPU, medians over seeds 0-2): blackjax (the Fisher-divergence metric of
# blackjax_nuts.py) 4.64 ESS/s, numpyro 2.73, nutpie 1.51, pymc 0.96, the reference 2.48.
RELATIVE_SPEED = {"blackjax": 1.87, "numpyro": 1.10, "nutpie": 0.61, "pymc": 0.39}


@dataclass(frozen=True)
class SamplerChoice:
    """The sampler a fit uses and why: what a run records and `pmbnn fit` prints."""

    name: str
    reason: str

    @property
    def sampler(self) -> Sampler:
        return SAMPLERS[self.name]

    @classmethod
    def for_setting(cls, setting: str) -> SamplerChoice:
        """`setting` itself, or for "auto" the fastest installed (RELATIVE_SPEED's order)."""
        if setting != "auto":
            return cls(setting, "as set")
        name = next(n for n in RELATIVE_SPEED if SAMPLERS[n].installed())
        fastest = next(iter(RELATIVE_SPEED))
        if name == fastest:
            return cls(name, "auto: the fastest installed")
        speedup = RELATIVE_SPEED[fastest] / RELATIVE_SPEED[name]
        return cls(
            name,
            f"auto: {fastest} is not installed; {JAX_EXTRA} samples about {speedup:.1f}x faster",
        )


def jittered_starts(model: pm.Model, chains: int, seed: int) -> list[dict[str, np.ndarray]]:
    """One start per chain, as the JAX samplers and PyMC's default init draw them: each free
    variable's initial value (a prior draw for weights) plus U(-1, 1) in unconstrained space.

    pm.sample adds no jitter when handed a compiled step (reused across refits), so without
    this every chain would start at the same noise sd and layer scales: R-hat, which assumes
    dispersed starts, would be judged on chains that began together.
    """
    from pymc.initial_point import make_initial_point_fn

    start_at = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), return_transformed=False
    )
    seeds = np.random.SeedSequence(seed).generate_state(chains)
    return [start_at(int(chain_seed)) for chain_seed in seeds]


@contextmanager
def one_blas_thread_per_process() -> Iterator[None]:
    """Limit BLAS to one thread here and in processes started meanwhile.

    PyMC's sampler runs each chain in its own process, whose BLAS would start a thread per
    core: 2 chains on 2 cores ran 4 busy threads, 3.5x slower (89 s against 25 s on the
    benchmark workload). Forked chains inherit threadpoolctl's limit; spawned ones (PyMC
    avoids fork once JAX is loaded) read the environment.
    """
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
