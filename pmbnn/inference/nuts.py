"""NUTS through pm.sample: several seeded chains, in parallel where there are cores."""

from __future__ import annotations

import os

import pymc as pm
from xarray import DataTree

from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec


def build_step(bnn: BnnModel, settings: InferenceSpec) -> pm.NUTS:
    """PyMC's NUTS for the model, compiled; reusable across runs (tuning restarts each chain)."""
    with bnn.model:
        return pm.NUTS(target_accept=settings.target_accept)


def sample_nuts(
    bnn: BnnModel, settings: InferenceSpec, progress: bool, step: pm.NUTS | None = None
) -> DataTree:
    """Draw from the posterior with PyMC's NUTS.

    PyMC's own sampler is named explicitly so that installing nutpie does not silently change
    results; PyMC's weight-space R-hat warnings are switched off because hidden-unit symmetry
    makes them misleading for a BNN (diagnose checks function space instead).
    """
    with bnn.model:
        return pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=min(settings.chains, os.cpu_count() or 1),
            step=step or build_step(bnn, settings),
            random_seed=settings.seed,
            nuts_sampler="pymc",
            progressbar=progress,
            quiet=not progress,
            compute_convergence_checks=False,
        )
