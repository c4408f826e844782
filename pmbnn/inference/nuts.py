"""NUTS through pm.sample: several seeded chains, in parallel where there are cores."""

from __future__ import annotations

import os

import pymc as pm
from xarray import DataTree

from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec


def sample_nuts(bnn: BnnModel, settings: InferenceSpec, progress: bool) -> DataTree:
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
            target_accept=settings.target_accept,
            random_seed=settings.seed,
            nuts_sampler="pymc",
            progressbar=progress,
            quiet=not progress,
            compute_convergence_checks=False,
        )
