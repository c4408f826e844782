"""BNNRegressor behaves as a scikit-learn estimator: scikit-learn's own checks, pipelines,
cross-validation, DataFrames, and the same numbers as pmbnn's own fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import require_extra

require_extra("sklearn")

from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from pmbnn.sklearn import BNNClassifier, BNNRegressor  # noqa: E402

# Tiny and fast: scikit-learn's checks fit dozens of times on small random data.
TINY = {"hidden": (8,), "method": "advi", "iterations": 300, "draws": 50}


@parametrize_with_checks([BNNRegressor(**TINY), BNNClassifier(**TINY)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 3))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.normal(size=80)
    return x, y


def test_predictions_and_their_uncertainty(data):
    x, y = data
    model = BNNRegressor(**TINY | {"iterations": 2000}).fit(x, y)
    mean, sd = model.predict(x, return_std=True)
    distribution = model.predict_distribution(x, levels=(0.05, 0.95))
    np.testing.assert_array_equal(mean, distribution.mean)
    np.testing.assert_allclose(sd**2, distribution.sd_epistemic**2 + distribution.sd_aleatoric**2)
    lower, upper = distribution.quantiles[0.05], distribution.quantiles[0.95]
    assert np.all(lower < mean) and np.all(mean < upper)
    scores = model.evaluate(x, y)
    assert scores.rmse == pytest.approx(np.sqrt(np.mean((mean - y) ** 2)))
    assert model.score(x, y) > 0.8  # R^2 of a fit that has learnt the function


def test_equals_pmbnn_fit_for_the_same_settings_and_seed(data, tmp_path):
    """The estimator is pmbnn's fit: the same spec and seed give the same draws."""
    from pmbnn import fit, load_spec

    x, y = data
    model = BNNRegressor(**TINY, random_state=3).fit(x, y)
    table = pd.DataFrame(x, columns=["x0", "x1", "x2"]).assign(y=y)
    table.to_csv(tmp_path / "d.csv", index=False)
    spec = model.spec().with_overrides(data={"path": str(tmp_path / "d.csv"), "target": "y"})
    (tmp_path / "s.toml").write_text(spec.to_toml())
    fitted, _ = fit(load_spec(tmp_path / "s.toml"))
    np.testing.assert_allclose(fitted.predict(x).mean, model.predict(x), rtol=1e-10)


def test_in_a_pipeline_with_cross_validation(data):
    x, y = data
    pipeline = make_pipeline(StandardScaler(), BNNRegressor(**TINY))
    scores = cross_val_score(pipeline, x, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_dataframes_by_column_name(data):
    x, y = data
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    model = BNNRegressor(**TINY).fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert model.fitted_.feature_names == ["a", "b", "c"]
    # The columns are in the fitted order: the same predictions; an array has no names, which
    # scikit-learn points out, as for any estimator fitted on a DataFrame.
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        by_position = model.predict(x)
    np.testing.assert_array_equal(model.predict(frame), by_position)
    with pytest.raises(ValueError, match="feature names"):
        model.predict(frame[["c", "a", "b"]])  # reordered columns are refused, not misread


def test_bad_settings_are_value_errors_at_fit(data):
    x, y = data
    # Named as the estimator's parameters, not as the spec keys behind them.
    with pytest.raises(ValueError, match=r"parameters: activation = 'swish'"):
        BNNRegressor(activation="swish").fit(x, y)
    with pytest.raises(ValueError, match=r"parameters: prior = 'wide' is not allowed"):
        BNNRegressor(prior="wide").fit(x, y)
    with pytest.raises(ValueError, match=r"parameters: random_state = -1"):
        BNNRegressor(random_state=-1).fit(x, y)
    with pytest.raises(ValueError, match="weight_scale is the scale of kind = 'fixed'"):
        BNNRegressor(weight_scale=2.0).fit(x, y)


@pytest.mark.parametrize("prior", ["fixed", "hierarchical", "ard"])
def test_prior_kinds_reach_the_model(data, prior):
    x, y = data
    extra = {"weight_scale": 2.0} if prior == "fixed" else {"scale_prior_scale": 1.5}
    model = BNNRegressor(**TINY, prior=prior, **extra).fit(x, y)
    assert model.fitted_.spec.prior.kind == prior
    scales = {"layer_scale", "feature_scale"} & set(model.fitted_.posterior.data_vars)
    assert scales == {"fixed": set(), "hierarchical": {"layer_scale"},
                      "ard": {"layer_scale", "feature_scale"}}[prior]  # fmt: skip


def test_fits_sharing_a_compiled_model_keep_their_own_column_names(data, tmp_path):
    """Two estimators on tables of the same width reuse one compiled model; each run keeps its
    own feature names, so each saves and reloads."""
    from pmbnn import load_run, save_run

    x, y = data
    first = BNNRegressor(**TINY).fit(pd.DataFrame(x, columns=["a", "b", "c"]), y)
    second = BNNRegressor(**TINY).fit(pd.DataFrame(x, columns=["p", "q", "r"]), y)
    for model, names in ((first, ["a", "b", "c"]), (second, ["p", "q", "r"])):
        out = tmp_path / "-".join(names)
        save_run(model.fitted_, _metrics(model), out)
        assert load_run(out).feature_names == names


def _metrics(model):
    from pmbnn.evaluation import Metrics

    return Metrics(model.train_scores_)


def test_a_refit_with_another_number_of_classes_gets_its_own_outputs(data, tmp_path):
    """A compiled classifier has one output per class: refitted to labels with fewer classes
    (another dataset, a fold without a rare class) it once kept the old outputs, failing at
    predict and saving a run that did not reload. Also when a Refitter is shared directly."""
    from pmbnn import load_run, save_run
    from pmbnn.data import Dataset
    from pmbnn.pipeline import Refitter, fit_split

    x, _ = data
    rows = np.arange(60)
    for count in (4, 3):
        model = BNNClassifier(**TINY).fit(x[:60], rows % count)
        assert model.predict_proba(x[:5]).shape == (5, count)
        save_run(model.fitted_, _metrics(model), tmp_path / f"classes-{count}")
        assert load_run(tmp_path / f"classes-{count}").classes == list(range(count))
    refitter, spec = Refitter(), BNNClassifier(**TINY).spec(3)
    for count in (4, 3):
        table = Dataset(x[:60], rows % count, ["a", "b", "c"], "y", "arrays", list(range(count)))
        fitted, _ = fit_split(spec, table, rows, rows[:0], refitter=refitter)
        assert fitted.predict(x[:5]).probabilities.shape == (5, count)


def test_hidden_must_be_a_sequence(data):
    x, y = data
    with pytest.raises(ValueError, match="hidden must be a tuple of layer widths"):
        BNNRegressor(hidden=50).fit(x, y)


def test_classifier_with_text_labels_in_a_pipeline():
    """Labels come back as given (text), probabilities sum to 1 and follow classes_, and the
    entropy split adds up; cross-validation in a pipeline works as with any classifier."""
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 2))
    y = np.where(x[:, 0] + 0.3 * rng.normal(size=120) > 0, "right", "left")
    model = BNNClassifier(**TINY | {"iterations": 2000}).fit(x, y)
    assert list(model.classes_) == ["left", "right"]
    probabilities = model.predict_proba(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(x), model.classes_[probabilities.argmax(axis=1)])
    assert model.score(x, y) > 0.85
    distribution = model.predict_distribution(x)
    np.testing.assert_allclose(
        distribution.entropy_total,
        distribution.entropy_aleatoric + distribution.mutual_information,
        atol=1e-9,
    )
    assert model.evaluate(x, y).accuracy == pytest.approx(model.score(x, y))
    scores = cross_val_score(make_pipeline(StandardScaler(), BNNClassifier(**TINY)), x, y, cv=3)
    assert scores.mean() > 0.8


def test_random_state_follows_scikit_learns_convention():
    """An int is the seed; None draws a new one at each fit, a RandomState draws from its
    stream (two equal streams, one seed); a bool is not a seed. No fit needed: the spec is
    what a fit uses."""
    seeds = {BNNRegressor(random_state=None).spec().inference.seed for _ in range(5)}
    assert len(seeds) > 1
    same = [BNNRegressor(random_state=np.random.RandomState(3)).spec() for _ in range(2)]
    assert same[0].inference.seed == same[1].inference.seed
    assert BNNRegressor(random_state=7).spec().inference.seed == 7
    with pytest.raises(ValueError, match="random_state must be an int"):
        BNNRegressor(random_state=True).spec()


def test_fits_differing_only_in_seed_share_one_compiled_model():
    from pmbnn.sklearn import _refitter, clear_compiled_models

    specs = [BNNRegressor(**TINY, random_state=seed).spec() for seed in (1, 2)]
    assert _refitter(specs[0], 3, None) is _refitter(specs[1], 3, None)
    other = BNNRegressor(**TINY | {"hidden": (9,)}).spec()
    assert _refitter(other, 3, None) is not _refitter(specs[0], 3, None)
    kept = _refitter(specs[0], 3, None)
    clear_compiled_models()  # frees the compiled models: the next fit compiles afresh
    assert _refitter(specs[0], 3, None) is not kept


def test_a_failed_refit_keeps_the_earlier_fit_and_its_labels(data):
    """The labels change only with a fit that succeeds: else the earlier model's outputs
    would be read as the new labels."""
    x, y = data
    labels = np.where(y > 0, "up", "down")
    model = BNNClassifier(**TINY).fit(x, labels)
    before = model.predict(x)
    model.set_params(prior="wide")
    with pytest.raises(ValueError, match="prior = 'wide'"):
        model.fit(np.c_[x, x[:, :1]], np.array(["a", "b", "c", "d"] * 20))
    assert list(model.classes_) == ["down", "up"] and model.n_features_in_ == 3
    np.testing.assert_array_equal(model.predict(x), before)
    # pmbnn.evaluate takes class codes: -1 would index the last class, 0.5 be truncated.
    import pmbnn

    for code in (-1.0, 0.5, 2.0):
        with pytest.raises(ValueError, match=r"class codes 0\.\.1"):
            pmbnn.evaluate(model.fitted_, x, np.full(len(x), code))


def test_the_target_is_never_named_as_a_feature(data):
    """A feature called y (say, a coordinate) keeps its name; the run's target takes y's
    Series name, else "y" made distinct, so an evaluation by name reads the right column."""
    x, y = data
    frame = pd.DataFrame(x, columns=["x", "y", "z"])
    model = BNNRegressor(**TINY).fit(frame, y)
    assert model.fitted_.feature_names == ["x", "y", "z"] and model.fitted_.target == "y_"
    named = BNNRegressor(**TINY).fit(frame, pd.Series(y, name="height"))
    assert named.fitted_.target == "height"
