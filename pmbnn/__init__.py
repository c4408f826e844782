"""pmbnn: Bayesian neural networks as PyMC models, with honest uncertainty.

Declare a network in a `Spec` (or a TOML file, `load_spec`), `fit` it by ADVI or NUTS, and
predict with the uncertainty split into epistemic and aleatoric parts::

    import pmbnn

    fitted, metrics = pmbnn.fit(pmbnn.load_spec("my-spec.toml"))
    prediction = fitted.predict(x_new)  # a DataFrame (by column name) or an array
    prediction.mean, prediction.sd_epistemic, prediction.sd_aleatoric, prediction.quantiles
    pmbnn.save_run(fitted, metrics, "runs/mine")
    pmbnn.predict_parquet("runs/mine", "big.parquet", "preds.parquet")  # out of core, on Dask
    pmbnn.diagnose(pmbnn.load_run("runs/mine")).verdict
    pmbnn.compare_runs(["runs/mine", "runs/other"]).table  # PSIS-LOO, ArviZ's compare
    pmbnn.prior_predictive(spec).summary()  # what the prior implies, before any fit

The names below are the public API; they are imported on first use, so that ``import pmbnn``
(and the command line's ``--help``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__all__ = [
    "ClassPrediction",
    "Comparison",
    "Diagnosis",
    "FittedBnn",
    "Metrics",
    "MissingExtraError",
    "PmbnnError",
    "Prediction",
    "PriorPredictive",
    "Scores",
    "Spec",
    "Thresholds",
    "build_report",
    "compare_runs",
    "diagnose",
    "evaluate",
    "fit",
    "load_run",
    "load_spec",
    "predict_parquet",
    "prior_predictive",
    "save_run",
]

_HOMES = {
    "Comparison": "pmbnn.compare",
    "Diagnosis": "pmbnn.diagnostics",
    "FittedBnn": "pmbnn.fitted",
    "Metrics": "pmbnn.evaluation",
    "MissingExtraError": "pmbnn.errors",
    "PmbnnError": "pmbnn.errors",
    "Prediction": "pmbnn.predict",
    "ClassPrediction": "pmbnn.predict",
    "PriorPredictive": "pmbnn.prior_check",
    "Scores": "pmbnn.evaluation",
    "Spec": "pmbnn.spec",
    "Thresholds": "pmbnn.diagnostics",
    "build_report": "pmbnn.report",
    "compare_runs": "pmbnn.compare",
    "diagnose": "pmbnn.diagnostics",
    "evaluate": "pmbnn.evaluation",
    "fit": "pmbnn.pipeline",
    "load_run": "pmbnn.run",
    "load_spec": "pmbnn.spec",
    "predict_parquet": "pmbnn.batch_predict",
    "prior_predictive": "pmbnn.prior_check",
    "save_run": "pmbnn.run",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'pmbnn' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from pmbnn.batch_predict import predict_parquet
    from pmbnn.compare import Comparison, compare_runs
    from pmbnn.diagnostics import Diagnosis, Thresholds, diagnose
    from pmbnn.errors import MissingExtraError, PmbnnError
    from pmbnn.evaluation import Metrics, Scores, evaluate
    from pmbnn.fitted import FittedBnn
    from pmbnn.pipeline import fit
    from pmbnn.predict import ClassPrediction, Prediction
    from pmbnn.prior_check import PriorPredictive, prior_predictive
    from pmbnn.report import build_report
    from pmbnn.run import load_run, save_run
    from pmbnn.spec import Spec, load_spec
