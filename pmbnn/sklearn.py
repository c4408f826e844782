"""A scikit-learn estimator around pmbnn: `BNNRegressor`, for pipelines, grid searches and
cross-validation. Needs the ``sklearn`` extra (``pip install 'pmbnn[sklearn]'``).

The constructor's arguments are the spec's settings (`pmbnn.Spec`), flattened, with
scikit-learn's ``random_state`` for the seed. ``predict(X, return_std=True)`` returns the
predictive sd as `GaussianProcessRegressor` and `BayesianRidge` do; `predict_distribution`
gives everything pmbnn predicts (epistemic and aleatoric sds, interval bounds).

Fits of the same network and settings on the same number of features reuse one compiled
model (as `pmbnn bench` does for its splits), so cross-validation compiles once.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

import numpy as np
from numpy.typing import ArrayLike

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from pmbnn.errors import MissingExtraError

    raise MissingExtraError(
        "pmbnn.sklearn needs scikit-learn, which is not installed: run pip install 'pmbnn[sklearn]'"
    ) from exc

from pmbnn.data import Dataset
from pmbnn.evaluation import Scores, evaluate
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.predict import DEFAULT_LEVELS, Prediction
from pmbnn.spec import Spec

# Compiled models kept for refitting: a handful (each holds compiled PyTensor/JAX programs).
MAX_COMPILED = 8
_compiled: OrderedDict[str, Refitter] = OrderedDict()


def _refitter(spec: Spec, n_features: int) -> Refitter:
    """One Refitter per network, settings and input width, least recently used dropped."""
    key = f"{n_features}:{spec.model_dump_json(exclude={'data'})}"
    if key in _compiled:
        _compiled.move_to_end(key)
    else:
        _compiled[key] = Refitter()
        if len(_compiled) > MAX_COMPILED:
            _compiled.popitem(last=False)
    return _compiled[key]


class BNNRegressor(RegressorMixin, BaseEstimator):
    """A Bayesian neural network regressor, fitted by ADVI or NUTS through PyMC.

    Parameters
    ----------
    hidden : tuple of int, default=(50,)
        Hidden layer widths; ``()`` is Bayesian linear regression.
    activation : {"tanh", "relu", "gelu", "softplus", "sigmoid"}, default="tanh"
    prior : {"hierarchical", "ard", "fixed"}, default="hierarchical"
        Where the weight prior's scale comes from: learned per layer, learned per layer and per
        input feature (automatic relevance determination), or fixed at ``weight_scale``.
    weight_scale : float or None, default=None
        The fixed prior's weight scale (None: 1.0); only with ``prior="fixed"``.
    scale_prior : {"halfnormal", "halfcauchy", "exponential"} or None, default=None
        Hyperprior of a learned scale (None: halfnormal); not with ``prior="fixed"``.
    scale_prior_scale : float or None, default=None
        Its scale (None: 2.0, chosen by measurement, see docs/priors.md).
    bias_scale : float, default=1.0
        Normal(0, bias_scale) bias prior. Weight sds are divided by sqrt(fan-in) when
        ``fan_in`` is true.
    fan_in : bool, default=True
    sigma_prior_scale : float, default=1.0
        Learned noise sd: sigma ~ HalfNormal(scale).
    sigma : float or None, default=None
        A fixed noise sd instead of a learned one.
    standardize : bool, default=True
        Scale inputs and target by the training data's statistics (predictions are in
        original units either way).
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
    draws, tune, chains, target_accept, sampler, backend, device
        As in the spec's ``[inference]`` section (see the README's spec table).
    iterations, learning_rate, batch_size
        Likewise, for ADVI.
    random_state : int, default=0
        The seed of the fit: the same seed gives the same numbers.

    Attributes
    ----------
    fitted_ : pmbnn.FittedBnn
        The fitted BNN: its trace, and `pmbnn.diagnose` / `pmbnn.save_run` work on it.
    train_scores_ : pmbnn.Scores
        RMSE, mean log predictive density and 90% coverage on the training rows.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (50,),
        activation: str = "tanh",
        prior: str = "hierarchical",
        weight_scale: float | None = None,
        scale_prior: str | None = None,
        scale_prior_scale: float | None = None,
        bias_scale: float = 1.0,
        fan_in: bool = True,
        sigma_prior_scale: float = 1.0,
        sigma: float | None = None,
        standardize: bool = True,
        method: str = "nuts",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 2,
        target_accept: float = 0.9,
        sampler: str = "auto",
        backend: str = "auto",
        device: str = "auto",
        iterations: int = 30000,
        learning_rate: float = 0.01,
        batch_size: int | None = None,
        random_state: int = 0,
    ):
        self.hidden = hidden
        self.activation = activation
        self.prior = prior
        self.weight_scale = weight_scale
        self.scale_prior = scale_prior
        self.scale_prior_scale = scale_prior_scale
        self.bias_scale = bias_scale
        self.fan_in = fan_in
        self.sigma_prior_scale = sigma_prior_scale
        self.sigma = sigma
        self.standardize = standardize
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.target_accept = target_accept
        self.sampler = sampler
        self.backend = backend
        self.device = device
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    def spec(self) -> Spec:
        """The pmbnn spec these parameters declare (ValueError naming a bad one)."""
        if not isinstance(self.random_state, numbers.Integral):
            raise ValueError(
                f"random_state must be an int (pmbnn fits are seeded), got {self.random_state!r}"
            )
        if not isinstance(self.hidden, tuple | list):
            raise ValueError(f"hidden must be a tuple of layer widths, got {self.hidden!r}")
        return Spec().with_overrides(
            source="BNNRegressor parameters",
            network={"hidden": list(self.hidden), "activation": self.activation},
            prior={
                "kind": self.prior,
                "weight_scale": self.weight_scale,
                "scale_prior": self.scale_prior,
                "scale_prior_scale": self.scale_prior_scale,
                "bias_scale": self.bias_scale,
                "fan_in": self.fan_in,
            },
            likelihood={"sigma_prior_scale": self.sigma_prior_scale, "sigma": self.sigma},
            data={"test_fraction": 0.0, "standardize": self.standardize},
            inference={
                "method": self.method,
                "draws": self.draws,
                "tune": self.tune,
                "chains": self.chains,
                "target_accept": self.target_accept,
                "sampler": self.sampler,
                "backend": self.backend,
                "device": self.device,
                "iterations": self.iterations,
                "learning_rate": self.learning_rate,
                "batch_size": self.batch_size,
                "seed": int(self.random_state),
            },
        )

    def fit(self, X: ArrayLike, y: ArrayLike) -> BNNRegressor:
        """Fit the posterior (or its approximation) to X (rows, features) and y (rows,)."""
        spec = self.spec()
        x, target = validate_data(
            self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2
        )
        names = [str(name) for name in getattr(self, "feature_names_in_", [])] or [
            f"x{j}" for j in range(x.shape[1])
        ]
        data = Dataset(x, np.asarray(target, dtype=float), names, "y", "scikit-learn arrays")
        rows = np.arange(len(target))
        refitter = _refitter(spec, x.shape[1])
        with refitter.lock:  # the compiled model is shared: one fit at a time on it
            fitted, metrics = fit_split(spec, data, rows, rows[:0], refitter=refitter)
        fitted.release_model()  # the compiled model is shared with later fits: keep our own
        self.fitted_ = fitted
        self.train_scores_ = metrics.train
        return self

    def predict(
        self, X: ArrayLike, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictive mean for each row of X; with ``return_std``, also the predictive sd
        (epistemic and aleatoric together, by the law of total variance)."""
        prediction = self.predict_distribution(X)
        if return_std:
            return prediction.mean, prediction.sd_total
        return prediction.mean

    def predict_distribution(
        self, X: ArrayLike, levels: tuple[float, ...] = DEFAULT_LEVELS
    ) -> Prediction:
        """Everything pmbnn predicts for each row of X: mean, total / epistemic / aleatoric
        sds, the quantiles at `levels`, and the network's output per posterior draw."""
        check_is_fitted(self, "fitted_")
        x = validate_data(self, X, dtype=np.float64, reset=False)
        prediction = self.fitted_.predict(x, levels)
        assert isinstance(prediction, Prediction)  # a regressor's family is continuous
        return prediction

    def evaluate(self, X: ArrayLike, y: ArrayLike) -> Scores:
        """RMSE, mean log predictive density and 90% interval coverage on (X, y).

        `score` stays scikit-learn's R^2 of the mean; these judge the whole distribution.
        """
        check_is_fitted(self, "fitted_")
        x, target = validate_data(self, X, y, dtype=np.float64, y_numeric=True, reset=False)
        return evaluate(self.fitted_, x, target)
