"""Model -> DataTree. Each method is its own module with the same calling shape."""

from __future__ import annotations

from xarray import DataTree

from pmbnn.inference.advi import AdviProgram, fit_advi
from pmbnn.inference.nuts import build_step, sample_nuts
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec
from pmbnn.trace import TARGET_DATA


class CompiledInference:
    """The inference programs of one model, compiled on first use and reused afterwards.

    The programs read the model's data from shared variables, so after ``pm.set_data`` a run
    fits the new rows without compiling again.
    """

    def __init__(self, bnn: BnnModel):
        self.bnn = bnn
        self._advi: dict[tuple, AdviProgram] = {}
        self._nuts: dict[tuple, object] = {}

    def run(self, settings: InferenceSpec, progress: bool) -> DataTree:
        """Posterior draws by the method the settings name.

        Every method returns groups ``posterior`` (chain, draw, ...), ``observed_data`` and
        ``constant_data``; NUTS adds ``sample_stats``, ADVI adds ``vi_loss`` and
        ``vi_approximation``.
        """
        if settings.method == "nuts":
            step_key = (settings.sampler, settings.target_accept)
            if step_key not in self._nuts:
                self._nuts[step_key] = build_step(self.bnn, settings)
            return sample_nuts(self.bnn, settings, progress, self._nuts[step_key])
        full_rank = settings.method == "fullrank_advi"
        # A minibatch likelihood is scaled to the row count it was built for.
        rows = len(self.bnn.model[TARGET_DATA].get_value()) if settings.batch_size else None
        key = (full_rank, settings.iterations, settings.batch_size, rows, settings.backend)
        if key not in self._advi:
            self._advi[key] = AdviProgram(self.bnn, settings, full_rank)
        return fit_advi(self.bnn, settings, full_rank, progress, self._advi[key])
