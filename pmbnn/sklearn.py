"""scikit-learn estimators around pmbnn: `BNNRegressor` and `BNNClassifier`, for pipelines,
grid searches and cross-validation. Needs the ``sklearn`` extra (``pip install 'pmbnn[sklearn]'``).

The constructor's arguments are the spec's settings (`pmbnn.Spec`), flattened, with
scikit-learn's ``random_state`` for the seed. ``predict(X, return_std=True)`` returns the
predictive sd as `GaussianProcessRegressor` and `BayesianRidge` do; `predict_distribution`
gives everything pmbnn predicts (epistemic and aleatoric sds, interval bounds).

Fits of the same network and settings on the same number of features reuse one compiled
model (as `pmbnn bench` does for its splits), so cross-validation compiles once;
`clear_compiled_models` frees them (fitted estimators keep working).
"""

from __future__ import annotations

import numbers
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from numpy.typing import ArrayLike

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from pmbnn.errors import MissingExtraError

    raise MissingExtraError(
        "pmbnn.sklearn needs scikit-learn, which is not installed: run pip install 'pmbnn[sklearn]'"
    ) from exc

from pmbnn.data import Dataset, check_magnitude
from pmbnn.errors import PmbnnError
from pmbnn.evaluation import Scores, evaluate
from pmbnn.families.base import plain
from pmbnn.pipeline import Refitter, fit_split
from pmbnn.predict import DEFAULT_LEVELS, ClassPrediction, Prediction
from pmbnn.spec import Spec

# Compiled models kept for refitting: a handful (each holds compiled PyTensor/JAX programs).
MAX_COMPILED = 8
_compiled: OrderedDict[str, Refitter] = OrderedDict()
_compiled_lock = threading.Lock()  # estimators fitted from several threads share the cache
# Spec keys under the estimator parameter a user set (the others have the key's own name).
PARAMETER_NAMES = {"kind": "prior", "seed": "random_state"}


def _refitter(spec: Spec, n_features: int, classes: list | None) -> Refitter:
    """One Refitter per network, settings (but the seed, which a compiled model does not
    depend on), input width and class labels, least recently used dropped."""
    settings = spec.with_overrides(inference={"seed": 0}).model_dump_json(exclude={"data"})
    key = f"{n_features}:{classes!r}:{settings}"
    with _compiled_lock:
        if key in _compiled:
            _compiled.move_to_end(key)
        else:
            _compiled[key] = Refitter()
            if len(_compiled) > MAX_COMPILED:
                _compiled.popitem(last=False)
        return _compiled[key]


def clear_compiled_models() -> None:
    """Free the compiled models kept for refitting (each holds its last training rows)."""
    with _compiled_lock:
        _compiled.clear()


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
        Learned noise sd: sigma ~ HalfNormal(scale), in units of y's sd (with standardize).
    sigma : float or None, default=None
        A fixed noise sd instead of a learned one, in y's own units.
    standardize : bool, default=True
        Scale inputs and target by the training data's statistics (predictions are in
        original units either way).
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
    draws, tune, chains, target_accept, sampler, backend, device
        As in the spec's ``[inference]`` section (see the README's spec table).
    iterations, learning_rate, batch_size
        Likewise, for ADVI.
    random_state : int, RandomState instance or None, default=0
        The seed of the fit: the same int gives the same numbers (on the same device). None
        or a RandomState draws a seed at each fit, as scikit-learn's estimators do; the seed
        used is in ``fitted_.spec.inference.seed``.

    Attributes
    ----------
    fitted_ : pmbnn.FittedBnn
        The fitted BNN: its trace; `pmbnn.diagnose(est.fitted_)` works on it, and
        `pmbnn.save_run(est.fitted_, pmbnn.Metrics(est.train_scores_), folder)` saves it.
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
        random_state: int | np.random.RandomState | None = 0,
    ):
        _keep_parameters(self, locals())

    def spec(self) -> Spec:
        """The pmbnn spec these parameters declare (ValueError naming a bad one)."""
        return _spec(self, {"sigma_prior_scale": self.sigma_prior_scale, "sigma": self.sigma})

    def fit(self, X: ArrayLike, y: ArrayLike) -> BNNRegressor:
        """Fit the posterior (or its approximation) to X (rows, features) and y (rows,)."""
        with _whole_on_failure(self):
            x, target = validate_data(
                self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2
            )
            _fit(self, self.spec(), x, np.asarray(target, dtype=float), getattr(y, "name", None))
        return self

    def predict(
        self, X: ArrayLike, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictive mean for each row of X; with ``return_std``, also the predictive sd
        (epistemic and aleatoric together, by the law of total variance)."""
        prediction = self.predict_distribution(X)
        return (prediction.mean, prediction.sd_total) if return_std else prediction.mean

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
        """RMSE, mean log predictive density and 90% interval coverage on (X, y): `score`
        stays scikit-learn's R^2 of the mean, these judge the whole distribution."""
        check_is_fitted(self, "fitted_")
        x, target = validate_data(self, X, y, dtype=np.float64, y_numeric=True, reset=False)
        return evaluate(self.fitted_, x, target)


class BNNClassifier(ClassifierMixin, BaseEstimator):
    """A Bayesian neural network classifier (Bernoulli for two classes, categorical for more),
    fitted by ADVI or NUTS through PyMC.

    Parameters are `BNNRegressor`'s, less the noise (``sigma``, ``sigma_prior_scale``): class
    labels have none. ``predict_proba`` gives the posterior mean of each class's probability;
    `predict_distribution` adds the uncertainty split by entropy (total, aleatoric, and the
    mutual information: epistemic).

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in the order of ``predict_proba``'s columns.
    fitted_ : pmbnn.FittedBnn
    train_scores_ : pmbnn.Scores
        Accuracy, log loss, Brier score, ECE and mean log predictive density on the training
        rows.
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
        random_state: int | np.random.RandomState | None = 0,
    ):
        _keep_parameters(self, locals())

    def spec(self, n_classes: int = 2) -> Spec:
        """The pmbnn spec these parameters declare for `n_classes` classes."""
        return _spec(self, {"family": "bernoulli" if n_classes == 2 else "categorical"})

    def fit(self, X: ArrayLike, y: ArrayLike) -> BNNClassifier:
        """Fit the posterior (or its approximation) to X (rows, features) and labels y."""
        with _whole_on_failure(self):
            x, labels = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
            check_classification_targets(labels)
            classes, codes = np.unique(labels, return_inverse=True)
            if len(classes) < 2:
                raise ValueError(
                    f"y has 1 class ({plain(classes[0])!r}); a classifier needs at least 2 classes"
                )
            # The labels change only with the fit they belong to: a refit that fails leaves
            # the earlier fit and its labels together.
            spec, name = self.spec(len(classes)), getattr(y, "name", None)
            _fit(self, spec, x, codes.astype(float), name, classes.tolist())
            self.classes_ = classes
        return self

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """(rows, classes): the posterior mean of each class's probability."""
        return self.predict_distribution(X).probabilities

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable class of each row of X."""
        probabilities = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[np.argmax(probabilities, axis=1)]

    def predict_distribution(self, X: ArrayLike) -> ClassPrediction:
        """Class probabilities, the predicted label, the entropy split and the logits per
        posterior draw, for each row of X."""
        check_is_fitted(self, "fitted_")
        x = validate_data(self, X, dtype=np.float64, reset=False)
        prediction = self.fitted_.predict(x)
        assert isinstance(prediction, ClassPrediction)
        return prediction

    def evaluate(self, X: ArrayLike, y: ArrayLike) -> Scores:
        """Accuracy, log loss, Brier score, ECE and mean log predictive density on (X, y)."""
        check_is_fitted(self, "fitted_")
        x, labels = validate_data(self, X, y, dtype=np.float64, reset=False)
        unknown = ~np.isin(labels, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y has the label {plain(labels[unknown][0])!r}, not one of "
                f"{[plain(c) for c in self.classes_]}"
            )
        return evaluate(self.fitted_, x, np.searchsorted(self.classes_, labels).astype(float))


def _keep_parameters(estimator: BaseEstimator, parameters: dict) -> None:
    """Store every constructor argument unchanged under its own name (scikit-learn's rule for
    __init__; the signatures stay explicit, as get_params reads them)."""
    for name, value in parameters.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _spec(estimator: BaseEstimator, likelihood: dict) -> Spec:
    """The pmbnn spec an estimator's parameters declare, with its `likelihood` settings; a bad
    value is a ValueError naming the estimator's parameter."""
    if not isinstance(estimator.hidden, tuple | list):
        raise ValueError(f"hidden must be a tuple of layer widths, got {estimator.hidden!r}")
    try:
        return _spec_of(estimator, likelihood, _seed(estimator.random_state))
    except PmbnnError as exc:
        named = re.sub(r"\[\w+\]\.(\w+)", lambda key: PARAMETER_NAMES.get(key[1], key[1]), str(exc))
        raise PmbnnError(named) from None


def _seed(random_state: object) -> int:
    """scikit-learn's random_state as pmbnn's seed: an int as it is, else (None, a
    RandomState) a seed drawn from it."""
    if isinstance(random_state, bool) or not (
        random_state is None or isinstance(random_state, numbers.Integral | np.random.RandomState)
    ):
        raise ValueError(
            f"random_state must be an int, a numpy RandomState or None, got {random_state!r}"
        )
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _spec_of(estimator: BaseEstimator, likelihood: dict, seed: int) -> Spec:
    return Spec().with_overrides(
        source=f"{type(estimator).__name__} parameters",
        network={"hidden": list(estimator.hidden), "activation": estimator.activation},
        prior={
            "kind": estimator.prior,
            "weight_scale": estimator.weight_scale,
            "scale_prior": estimator.scale_prior,
            "scale_prior_scale": estimator.scale_prior_scale,
            "bias_scale": estimator.bias_scale,
            "fan_in": estimator.fan_in,
        },
        likelihood=likelihood,
        data={"test_fraction": 0.0, "standardize": estimator.standardize},
        inference={
            "method": estimator.method,
            "draws": estimator.draws,
            "tune": estimator.tune,
            "chains": estimator.chains,
            "target_accept": estimator.target_accept,
            "sampler": estimator.sampler,
            "backend": estimator.backend,
            "device": estimator.device,
            "iterations": estimator.iterations,
            "learning_rate": estimator.learning_rate,
            "batch_size": estimator.batch_size,
            "seed": seed,
        },
    )


@contextmanager
def _whole_on_failure(estimator: BaseEstimator) -> Iterator[None]:
    """A fit that fails leaves the estimator as it was: validate_data has already replaced the
    input width and names, which must go on describing the earlier fit."""
    names = ("n_features_in_", "feature_names_in_")
    saved = {name: getattr(estimator, name) for name in names if hasattr(estimator, name)}
    try:
        yield
    except BaseException:
        for name in (name for name in names if hasattr(estimator, name)):
            delattr(estimator, name)
        for name, value in saved.items():
            setattr(estimator, name, value)
        raise


def _fit(
    estimator: BaseEstimator,
    spec: Spec,
    x: np.ndarray,
    y: np.ndarray,
    y_name: object,
    classes: list | None = None,
) -> None:
    """Fit `spec` to every row of (x, y) through the estimator's shared compiled model and set
    ``fitted_`` and ``train_scores_``. The run's target is named as y's Series was, else "y",
    never as a feature (an evaluation by name would read the wrong column)."""
    names = [str(name) for name in getattr(estimator, "feature_names_in_", [])] or [
        f"x{j}" for j in range(x.shape[1])
    ]
    target = str(y_name) if y_name is not None and str(y_name) not in names else "y"
    while target in names:
        target += "_"
    check_magnitude(np.c_[x, y], [*names, target], "the scikit-learn arrays")
    data = Dataset(x, y, names, target, "scikit-learn arrays", classes)
    rows = np.arange(len(y))
    refitter = _refitter(spec, x.shape[1], classes)
    with refitter.lock:  # the compiled model is shared: one fit at a time on it
        fitted, metrics = fit_split(spec, data, rows, rows[:0], refitter=refitter)
    fitted.release_model()  # the compiled model is shared with later fits: keep our own
    estimator.fitted_ = fitted
    estimator.train_scores_ = metrics.train
