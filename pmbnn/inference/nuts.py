"""NUTS through pm.sample: several seeded chains, by whichever sampler the settings name.

Every sampler (`samplers.py`) returns the same layout: ``posterior`` (chain, draw, ...) and
``sample_stats`` with at least ``diverging``, ``energy``, ``tree_depth`` and
``reached_max_treedepth``.
"""

from __future__ import annotations

import signal
import warnings

import numpy as np
import pymc as pm
from xarray import DataTree

from pmbnn.cores import usable_cores
from pmbnn.inference.samplers import BlackjaxSampler, PymcSampler, SamplerChoice
from pmbnn.interrupts import handle_signals, raise_if_interrupted
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec
from pmbnn.trace import POSTERIOR, SAMPLE_STATS

MAX_TREE_DEPTH = 10  # the default of every sampler here
# nutpie calls these stats by its own names.
STAT_NAMES = {"depth": "tree_depth", "maxdepth_reached": "reached_max_treedepth"}


def build_step(bnn: BnnModel, settings: InferenceSpec) -> pm.NUTS | None:
    """PyMC's NUTS for the model, compiled; reusable across runs. None for other samplers,
    which compile their own program inside pm.sample."""
    sampler = SamplerChoice.for_setting(settings.sampler).sampler
    return sampler.build_step(bnn, settings) if isinstance(sampler, PymcSampler) else None


def sample_nuts(
    bnn: BnnModel, settings: InferenceSpec, progress: bool, step: pm.NUTS | None = None
) -> DataTree:
    """Draw from the posterior with the NUTS implementation the settings name.

    The sampler is always named explicitly, so installing nutpie does not silently change
    results; PyMC's weight-space R-hat warnings are off because hidden-unit symmetry makes them
    misleading for a BNN (diagnose checks function space instead).
    """
    sampler = SamplerChoice.for_setting(settings.sampler).sampler
    sampler.require()
    cores = min(settings.chains, usable_cores())
    options = sampler.options(bnn, settings, step)
    # Every sampler swallows Ctrl-C in its own way (PyMC and nutpie return what they have);
    # the signal is recorded, and a trace cut short is never returned as if complete.
    with (
        handle_signals((signal.SIGINT,)),
        sampler.context(cores),
        bnn.model,
        warnings.catch_warnings(),
    ):
        # Raised on converting a trace cut short (more chains than draws), never otherwise wrong.
        warnings.filterwarnings("ignore", "Found chain dimension to be longer")
        try:
            if isinstance(sampler, BlackjaxSampler):
                trace = sampler.sample(bnn, settings, options, progress)
            else:
                trace = pm.sample(
                    draws=settings.draws,
                    tune=settings.tune,
                    chains=settings.chains,
                    cores=cores,
                    random_seed=settings.seed,
                    nuts_sampler=sampler.name,
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
    sizes = trace[POSTERIOR].sizes
    got, wanted = (sizes["chain"], sizes["draw"]), (settings.chains, settings.draws)
    if got != wanted:
        raise KeyboardInterrupt(
            f"sampling stopped early: {got[0]} chains x {got[1]} draws of {wanted[0]} x {wanted[1]}"
        )


def _common_layout(trace: DataTree) -> DataTree:
    """Numpy-backed groups with the stat names diagnostics read, whatever the backend.

    JAX backends hand back arrays still being computed; converting them here makes the
    sampler's wall time include the sampling (and the trace savable).
    """
    groups = {}
    for name in (POSTERIOR, SAMPLE_STATS):
        data = trace[name].to_dataset()
        data = data.rename({k: v for k, v in STAT_NAMES.items() if k in data})
        data = data.copy(data={k: np.asarray(v.values) for k, v in data.data_vars.items()})
        if name == SAMPLE_STATS and "reached_max_treedepth" not in data:
            data["reached_max_treedepth"] = data["tree_depth"] >= MAX_TREE_DEPTH
        groups[name] = data
    for name, data in groups.items():
        trace[name] = DataTree(data)
    return trace
