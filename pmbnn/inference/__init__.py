"""Model -> DataTree. Each method is its own module with the same calling shape."""

from __future__ import annotations

from xarray import DataTree

from pmbnn.inference.advi import fit_advi
from pmbnn.inference.nuts import sample_nuts
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec


def run_inference(bnn: BnnModel, settings: InferenceSpec, progress: bool) -> DataTree:
    """Posterior draws for `bnn` by the method the settings name.

    Every method returns groups ``posterior`` (chain, draw, ...), ``observed_data`` and
    ``constant_data``; NUTS adds ``sample_stats``, ADVI adds ``vi_loss``.
    """
    if settings.method == "nuts":
        return sample_nuts(bnn, settings, progress)
    return fit_advi(bnn, settings, full_rank=settings.method == "fullrank_advi", progress=progress)
