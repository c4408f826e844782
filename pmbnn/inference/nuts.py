"""NUTS through pm.sample: several seeded chains, by PyMC's sampler or a JAX/Rust backend.

Every backend returns the same layout: ``posterior`` (chain, draw, ...) and ``sample_stats``
with at least ``diverging``, ``energy``, ``tree_depth`` and ``reached_max_treedepth``.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import pymc as pm
from threadpoolctl import threadpool_limits
from xarray import DataTree

from pmbnn.inference.backends import (
    check_backend,
    compile_backend,
    use_all_cpu_cores_for_jax,
)
from pmbnn.interrupts import child_process_context, handle_signals, raise_if_interrupted
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec

MAX_TREE_DEPTH = 10  # the default of every backend here
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# nutpie calls these stats by its own names.
STAT_NAMES = {"depth": "tree_depth", "maxdepth_reached": "reached_max_treedepth"}


def build_step(bnn: BnnModel, settings: InferenceSpec) -> pm.NUTS | None:
    """PyMC's NUTS for the model, compiled; reusable across runs. None for other backends,
    which compile their own program inside pm.sample."""
    if settings.sampler != "pymc":
        return None
    with bnn.model:
        return pm.NUTS(target_accept=settings.target_accept)


def sample_nuts(
    bnn: BnnModel, settings: InferenceSpec, progress: bool, step: pm.NUTS | None = None
) -> DataTree:
    """Draw from the posterior with the NUTS implementation the settings name.

    The sampler is always named explicitly, so installing nutpie does not silently change
    results; PyMC's weight-space R-hat warnings are off because hidden-unit symmetry makes them
    misleading for a BNN (diagnose checks function space instead).
    """
    sampler = settings.sampler
    check_backend(sampler)
    chains = settings.chains
    cores = min(chains, os.cpu_count() or 1)
    options: dict = {}
    if sampler == "pymc":
        options["step"] = step or build_step(bnn, settings)
        # Forking a process in which JAX runs threads (an earlier ADVI fit, a JAX sampler)
        # can deadlock the chains; start them from a clean server process instead. Either way
        # the chain processes die with this one, even when it is killed outright.
        start_method = "forkserver" if "jax" in sys.modules else "fork"
        options["mp_ctx"] = child_process_context(start_method)
    elif sampler == "nutpie":
        options["nuts"] = {"target_accept": settings.target_accept}
        if compile_backend(settings.backend) == "jax":
            # nutpie's threads call the JAX-compiled density: on the perf workload 3851
            # gradients/s against 460 through numba.
            options["compile_kwargs"] = {"backend": "jax", "gradient_backend": "jax"}
    else:
        use_all_cpu_cores_for_jax()
        import jax

        # One chain per device when there are enough (CPU cores, or GPUs), else all in one.
        parallel = jax.local_device_count() >= chains
        options["nuts"] = {
            "target_accept": settings.target_accept,
            "chain_method": "parallel" if parallel else "vectorized",
        }
    limit = one_blas_thread_per_process() if sampler == "pymc" and cores > 1 else nullcontext()
    # Every backend swallows Ctrl-C in its own way (PyMC and nutpie return what they have);
    # the signal is recorded, and a trace cut short is never returned as if complete.
    with handle_signals((signal.SIGINT,)), limit, bnn.model, warnings.catch_warnings():
        # Raised on converting a trace cut short (more chains than draws), never otherwise wrong.
        warnings.filterwarnings("ignore", "Found chain dimension to be longer")
        try:
            trace = pm.sample(
                draws=settings.draws,
                tune=settings.tune,
                chains=chains,
                cores=cores,
                random_seed=settings.seed,
                nuts_sampler=sampler,
                progressbar=progress,
                quiet=not progress,
                compute_convergence_checks=False,
                **options,
            )
        except Exception:
            raise_if_interrupted()  # the interrupt, not what it broke, is the cause
            raise
        raise_if_interrupted()
    trace = _common_layout(trace)
    _check_complete(trace, settings)
    return trace


def _check_complete(trace: DataTree, settings: InferenceSpec) -> None:
    """KeyboardInterrupt if the sampler returned fewer chains or draws than asked for."""
    sizes = trace["posterior"].sizes
    got, wanted = (sizes["chain"], sizes["draw"]), (settings.chains, settings.draws)
    if got != wanted:
        raise KeyboardInterrupt(
            f"sampling stopped early: {got[0]} chains x {got[1]} draws of {wanted[0]} x {wanted[1]}"
        )


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


def _common_layout(trace: DataTree) -> DataTree:
    """Numpy-backed groups with the stat names diagnostics read, whatever the backend.

    JAX backends hand back arrays still being computed; converting them here makes the
    sampler's wall time include the sampling (and the trace savable).
    """
    groups = {}
    for name in ("posterior", "sample_stats"):
        data = trace[name].to_dataset()
        data = data.rename({k: v for k, v in STAT_NAMES.items() if k in data})
        data = data.copy(data={k: np.asarray(v.values) for k, v in data.data_vars.items()})
        if name == "sample_stats" and "reached_max_treedepth" not in data:
            data["reached_max_treedepth"] = data["tree_depth"] >= MAX_TREE_DEPTH
        groups[name] = data
    for name, data in groups.items():
        trace[name] = DataTree(data)
    return trace
