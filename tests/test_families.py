"""Likelihood families: each against what is known about it (its exact log density, a GLM
fitted by hand, Monte Carlo from its own draws), and every path a user walks with it."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import special
from scipy.stats import binom

from pmbnn.arguments import FAMILIES as FAMILY_CHOICES
from pmbnn.families import FAMILIES, entropy_split, family_of
from pmbnn.families.base import NetworkOutputs
from pmbnn.model import build_model
from pmbnn.pipeline import fit
from pmbnn.predictive_checks import COVERAGE_LEVELS, Calibration, interval_coverage
from pmbnn.run import load_run
from pmbnn.spec import Family, LikelihoodSpec, Spec, load_builtin_spec
from tests.helpers import assert_usage_error, open_in_chromium, run_cli

ROWS = 60
LABELS = np.array(["ant", "bee", "cat"])


def family_table(family: str, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Two inputs and a target of the kind `family` models (labels as text for classifiers)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    signal = x[:, 0] - 0.5 * x[:, 1]
    target = {
        "gaussian": signal + 0.3 * rng.normal(size=rows),
        "student_t": signal + 0.3 * rng.standard_t(3, size=rows),
        "heteroscedastic_gaussian": signal + (0.1 + 0.4 * np.abs(x[:, 1])) * rng.normal(size=rows),
        "lognormal": np.exp(0.5 * signal + 0.3 * rng.normal(size=rows)),
        "poisson": rng.poisson(np.exp(0.5 * signal)),
        "bernoulli": np.where(signal + 0.5 * rng.normal(size=rows) > 0, "yes", "no"),
        "categorical": LABELS[np.digitize(signal + 0.3 * rng.normal(size=rows), [-0.5, 0.5])],
    }[family]
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": target})


def test_every_family_is_a_spec_choice_and_a_command_line_choice():
    assert set(FAMILIES) == set(typing.get_args(Family)) == set(FAMILY_CHOICES)


# -- the model: each family's log density against the same GLM written by hand in PyMC --------


def _reference_glm(family: str, x: np.ndarray, y: np.ndarray, n_classes: int) -> pm.Model:
    """The zero-hidden-layer network of `family` written as a plain PyMC GLM: the prior pmbnn
    documents (w ~ N(0, 1 / sqrt(fan-in)), b ~ N(0, 1)) and the family's likelihood."""
    settings = LikelihoodSpec(family=family)
    p = x.shape[1]
    outputs = {"heteroscedastic_gaussian": 2, "categorical": n_classes}.get(family, 1)
    with pm.Model() as model:
        shape = (p,) if outputs == 1 else (p, outputs)
        sd = np.full(shape, 1 / np.sqrt(p))
        if family == "heteroscedastic_gaussian":  # the noise head's own fixed scale
            sd[:, 1] = settings.noise_head_scale / np.sqrt(p)
        w = pm.Normal("w_out", 0, sd, shape=shape)
        b = pm.Normal("b_out", 0, 1, shape=() if outputs == 1 else (outputs,))
        f = x @ w + b
        if family in ("gaussian", "lognormal"):
            pm.Normal("y", f, pm.HalfNormal("sigma", 1.0), observed=y)
        elif family == "student_t":
            nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
            pm.StudentT("y", nu=nu, mu=f, sigma=pm.HalfNormal("sigma", 1.0), observed=y)
        elif family == "heteroscedastic_gaussian":
            pm.Normal("y", f[:, 0], pm.math.exp(f[:, 1]), observed=y)
        elif family == "poisson":
            pm.Poisson("y", pm.math.exp(f), observed=y)
        elif family == "bernoulli":
            pm.Bernoulli("y", logit_p=f, observed=y)
        else:
            pm.Categorical("y", logit_p=f, observed=y)
    return model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_zero_hidden_layer_log_density_is_the_glms(family):
    """Exact: the model pmbnn builds has the hand-written GLM's joint log density (prior and
    likelihood, transforms included) at random points, to 1e-9."""
    frame = family_table(family)
    spec = Spec().with_overrides(
        network={"hidden": []}, prior={"kind": "fixed"}, likelihood={"family": family}
    )
    fam = family_of(spec.likelihood)
    x = frame[["a", "b"]].to_numpy()
    if fam.labelled:
        y, classes = fam.encode_labels(frame["y"], "y", "table", None)
    else:
        y, classes = fam.transform(frame["y"].to_numpy(dtype=float)), None
    bnn = build_model(spec, x, y, ["a", "b"], classes=classes, target_scale=1.0)
    reference = _reference_glm(family, x, fam.model_values(y), len(classes or []))
    ours, theirs = bnn.model.compile_logp(), reference.compile_logp()
    rng = np.random.default_rng(1)
    start = bnn.model.initial_point()
    assert set(start) == set(reference.initial_point())
    for _ in range(5):
        point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in start.items()}
        assert ours(point) == pytest.approx(theirs(point), rel=1e-9, abs=1e-9)


@pytest.mark.slow
def test_poisson_glm_posterior_matches_a_hand_written_nuts_fit(tmp_path):
    """Poisson regression fitted through pmbnn (default sampler) and the same GLM by PyMC's own
    NUTS agree on every coefficient's posterior mean within 5 combined Monte Carlo standard
    errors (sd / sqrt(ESS) of each fit; ESS > 300 in each, measured)."""
    import arviz_stats as azs

    frame = family_table("poisson", rows=200, seed=3)
    frame.to_csv(tmp_path / "counts.csv", index=False)
    spec = Spec().with_overrides(
        network={"hidden": []},
        prior={"kind": "fixed"},
        likelihood={"family": "poisson"},
        data={
            "path": str(tmp_path / "counts.csv"),
            "target": "y",
            "test_fraction": 0.0,
            "standardize": False,
        },
        inference={"draws": 600, "tune": 400, "chains": 2, "seed": 5},
    )
    fitted, _ = fit(spec)
    x, y = frame[["a", "b"]].to_numpy(), frame["y"].to_numpy()
    with _reference_glm("poisson", x, y, 0):
        reference = pm.sample(600, tune=400, chains=2, random_seed=6, progressbar=False)
    for name in ("w_out", "b_out"):
        ours, theirs = fitted.posterior[name], reference.posterior[name]
        error = np.sqrt(
            (ours.std(("chain", "draw")) ** 2 / azs.ess(ours)).values
            + (theirs.std(("chain", "draw")) ** 2 / azs.ess(theirs)).values
        )
        gap = np.abs(ours.mean(("chain", "draw")).values - theirs.mean(("chain", "draw")).values)
        np.testing.assert_array_less(gap, 5 * error)


# -- prediction: each family's summaries against Monte Carlo from its own draws -------------


def _synthetic_draws(family: str, draws: int = 300, inputs: int = 4):
    """A family's predictive draws from made-up network outputs and noise parameters."""
    rng = np.random.default_rng(7)
    settings = LikelihoodSpec(family=family)
    fam = family_of(settings)
    classes = {"bernoulli": ["no", "yes"], "categorical": list(LABELS)}.get(family)
    outputs = rng.normal(0.5, 0.4, size=(draws, inputs, fam.n_outputs(classes)))
    outputs = outputs[..., 0] if fam.n_outputs(classes) == 1 else outputs
    posterior = xr.Dataset(
        {
            "sigma": (("chain", "draw"), rng.uniform(0.3, 0.6, (1, draws))),
            "nu": (("chain", "draw"), rng.uniform(5, 9, (1, draws))),  # a finite 4th moment
        },
        coords={"chain": [0], "draw": np.arange(draws)},
    )
    # log y's sd at most 0.3 for log-normal: its kurtosis stays small (the test's bound needs it)
    y_scale = 0.5 if family == "lognormal" else 2.0
    return fam.draws(NetworkOutputs(outputs, posterior, 1.5, y_scale, classes))


CONTINUOUS_AND_COUNTS = ["gaussian", "student_t", "heteroscedastic_gaussian", "lognormal",
                         "poisson"]  # fmt: skip


@pytest.mark.parametrize("family", CONTINUOUS_AND_COUNTS)
def test_predictive_summaries_match_monte_carlo(family):
    """The exact mean, sd and quantiles of the predictive mixture against 200 replicates of
    every draw (60,000 samples per input): the mean within 5 standard errors, the sd within
    5 of its own (sd * sqrt((kurtosis - 1) / 4n), kurtosis < 9 here), and the empirical CDF
    at each quantile within 5 binomial sds of its level (for counts: the level lies between
    the CDF just below the quantile and at it)."""
    distribution = _synthetic_draws(family)
    levels = (0.05, 0.5, 0.95)
    prediction = distribution.summarize(levels)
    rng = np.random.default_rng(11)
    samples = np.concatenate([distribution.sample(rng) for _ in range(200)])
    n = len(samples)
    sd = samples.std(axis=0)
    np.testing.assert_array_less(
        np.abs(samples.mean(axis=0) - prediction.mean), 5 * sd / np.sqrt(n)
    )
    np.testing.assert_array_less(np.abs(sd - prediction.sd_total), 5 * sd * np.sqrt(2.0 / n))
    assert np.all(prediction.sd_total >= prediction.sd_epistemic)
    for level, q in prediction.quantiles.items():
        bound = 5 * np.sqrt(level * (1 - level) / n)
        if family == "poisson":
            np.testing.assert_array_less(np.mean(samples < q, axis=0) - bound, level)
            np.testing.assert_array_less(level, np.mean(samples <= q, axis=0) + bound)
        else:
            np.testing.assert_array_less(np.abs(np.mean(samples <= q, axis=0) - level), bound)


def test_count_intervals_are_judged_against_their_own_probability():
    """Whole-count intervals hold more than their level: 20,000 rows drawn from the very
    Poisson the model predicts (rates 0.3-3) cover well above 90% with the "90%" interval,
    so a band around the nominal level would call a perfect model miscalibrated. The band is
    around the predictive's own mass on the interval (exact sums of the pmf), and the
    coverage falls inside it at every level."""
    rng = np.random.default_rng(5)
    rate = rng.uniform(0.3, 3.0, size=20_000)
    draws = family_of(LikelihoodSpec(family="poisson")).draws(
        NetworkOutputs(np.log(np.tile(rate, (4, 1))), xr.Dataset())
    )
    tails = [(1 - level) / 2 for level in COVERAGE_LEVELS]
    prediction = draws.summarize(tuple(tails + [1 - t for t in tails]))
    y = rng.poisson(rate).astype(float)
    coverage, expected = interval_coverage(draws, prediction, y)
    n = len(y)
    assert expected[COVERAGE_LEVELS.index(0.9)] > 0.93  # whole counts: far above 0.90
    assert coverage[COVERAGE_LEVELS.index(0.9)] > binom.ppf(0.975, n, 0.9) / n  # nominal: fails
    # 99.9% binomial range per level (conservative: the rows' unequal probabilities make the
    # count Poisson-binomial, whose variance is below the binomial's at the same mean)
    low, high = binom.ppf(0.0005, n, expected) / n, binom.ppf(0.9995, n, expected) / n
    assert np.all((low <= coverage) & (coverage <= high)), (coverage, expected)


def test_integer_labels_stay_exact():
    """Labels are compared as integers: through floats, 2**53 and 2**53 + 1 were one class."""
    labels = pd.Series([2**53, 2**53 + 1, 2**53], dtype="int64")
    codes, classes = family_of(LikelihoodSpec(family="bernoulli")).encode_labels(
        labels, "y", "test", None
    )
    assert classes == [2**53, 2**53 + 1] and codes.tolist() == [0, 1, 0]


def test_rows_without_a_finite_predictive_sd_are_left_out_of_the_residual_sd():
    """Student-t noise with nu <= 2 in some draw has no variance: such a row's z is undefined,
    not 0 (which pulled the standardized residual sd below 1, "intervals too wide")."""
    one = np.ones(1)
    calibration = Calibration(
        "test", one, one, one, one, one, np.full(3, 0.5),
        residual=np.array([2.0, -2.0, 5.0]),
        sd_total=np.array([2.0, 2.0, np.inf]),
        sd_epistemic=np.ones(3),
    )  # fmt: skip
    assert calibration.to_dict()["standardized_residual_sd"] == pytest.approx(1.0)


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_a_confident_wrong_class_costs_its_logit_not_infinity(family):
    """log P(y) from the logits: at a logit of 40 the probability of the other class rounds to
    0 in float64, yet its log is -40 (a -inf would make the LOO of every point NaN)."""
    fam = family_of(LikelihoodSpec(family=family))
    classes = {"bernoulli": ["no", "yes"], "categorical": list(LABELS)}[family]
    logits = np.zeros((5, 1, fam.n_outputs(classes)))
    logits[..., -1] = 40.0  # every draw sure of the last class
    logits = logits[..., 0] if fam.n_outputs(classes) == 1 else logits
    posterior = xr.Dataset(coords={"chain": [0], "draw": np.arange(5)})
    draws = fam.draws(NetworkOutputs(logits, posterior, classes=classes))
    np.testing.assert_allclose(draws.log_density(np.array([0])), -40.0, rtol=1e-12)
    scores = draws.scores(np.array([0]))
    assert scores["log_loss"] == pytest.approx(40.0, rel=1e-12)


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_class_probabilities_match_monte_carlo(family):
    """The mean class probabilities against the label frequencies of 100 replicates of every
    draw (30,000 labels per input), within 5 binomial standard errors."""
    distribution = _synthetic_draws(family)
    prediction = distribution.summarize(())
    rng = np.random.default_rng(12)
    codes = np.concatenate([distribution.sample(rng) for _ in range(100)])
    for k in range(len(prediction.classes)):
        p = prediction.probabilities[:, k]
        bound = 5 * np.sqrt(p * (1 - p) / len(codes))
        np.testing.assert_array_less(np.abs(np.mean(codes == k, axis=0) - p), bound)


def test_entropy_split_adds_up_and_vanishes_without_epistemic_uncertainty():
    rng = np.random.default_rng(0)
    probabilities = special.softmax(rng.normal(size=(200, 50, 4)) * 2, axis=-1)
    total, aleatoric, epistemic = entropy_split(probabilities)
    np.testing.assert_allclose(total, aleatoric + epistemic, atol=1e-9, rtol=0)
    assert np.all(epistemic >= 0) and np.all(epistemic > 1e-3)  # these draws disagree
    same = np.broadcast_to(probabilities[:1], probabilities.shape)
    total, aleatoric, epistemic = entropy_split(same)
    np.testing.assert_allclose(epistemic, 0.0, atol=1e-12)
    np.testing.assert_allclose(total, aleatoric, atol=1e-12)
    # A certain draw has no entropy: 0 log 0 counts as 0, not NaN.
    assert entropy_split(np.eye(3)[None, :, :])[0] == pytest.approx([0, 0, 0])


def test_student_t_sd_is_infinite_where_the_variance_does_not_exist():
    fam = family_of(LikelihoodSpec(family="student_t", nu=1.5))
    outputs = np.zeros((10, 3))
    posterior = xr.Dataset(
        {"sigma": (("chain", "draw"), np.ones((1, 10)))},
        coords={"chain": [0], "draw": np.arange(10)},
    )
    prediction = fam.draws(NetworkOutputs(outputs, posterior)).summarize((0.05, 0.95))
    assert np.all(np.isinf(prediction.sd_total)) and prediction.finite_rows().all()
    # One component: the quantiles are Student-t's own.
    assert prediction.quantiles[0.95] == pytest.approx(special.stdtrit(1.5, 0.95), rel=1e-9)


# -- targets: bad ones are one clear line, nothing written ----------------------------------


@pytest.mark.parametrize(
    ("family", "target", "fragments"),
    [
        ("bernoulli", ["a", "b", "c", "a"], ["3 distinct labels", "'categorical'"]),
        ("poisson", [1, 2, -1, 0], ["-1", "data row 3", "counts"]),
        ("poisson", [1, 2.5, 1, 0], ["2.5", "data row 2"]),
        ("categorical", [0.5, 1.0, 2.0, 1.0], ["0.5", "data row 1", "class labels"]),
        ("lognormal", [1.0, 0.0, 2.0, 3.0], ["0.0", "data row 2", "positive"]),
    ],
)
def test_bad_targets_are_refused_by_name(family, target, fragments, tmp_path, capsys):
    table = tmp_path / "t.csv"
    rows = len(target) * 3
    pd.DataFrame({"x": np.arange(rows), "y": target * 3}).to_csv(table, index=False)
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys, "fit", "--data", str(table), "--target", "y", "--family", family,
        "--method", "advi", "--out", str(out),
    )  # fmt: skip
    assert_usage_error(code, err, "'y'", *fragments)
    assert not out.exists()


# -- a classifier run: saved, reloaded, predicted, reported --------------------------------


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A 3-class categorical fit (text labels) by ADVI: (the fit in memory, its saved run)."""
    from pmbnn.run import save_run

    folder = tmp_path_factory.mktemp("classifier")
    family_table("categorical", rows=120).to_csv(folder / "animals.csv", index=False)
    spec = Spec().with_overrides(
        likelihood={"family": "categorical"},
        data={"path": str(folder / "animals.csv"), "target": "y", "test_fraction": 0.25},
        inference={"method": "advi"},
    )
    fitted, metrics = fit(spec)
    save_run(fitted, metrics, folder / "run")
    return fitted, folder / "run"


@pytest.fixture(scope="module")
def classifier_run(classifier) -> Path:
    return classifier[1]


def run_cli_plain(*args: str) -> int:
    from pmbnn.cli import main

    return main(list(args))


def test_classifier_reloads_and_predicts_the_same_labels_and_probabilities(classifier):
    """The fit in memory and its saved, reloaded run predict the same to the bit."""
    fitted, run = classifier
    reloaded = load_run(run)
    assert reloaded.classes == list(LABELS)  # the label set and order are stored with the run
    x = family_table("categorical", rows=30, seed=9)[["b", "a"]]  # columns found by name
    first, second = fitted.predict(x), reloaded.predict(x)
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    np.testing.assert_array_equal(first.label, second.label)
    assert set(first.label) <= set(LABELS)
    np.testing.assert_allclose(first.probabilities.sum(axis=1), 1.0, atol=1e-12)
    frame = first.to_frame()
    assert list(frame.columns) == ["p_ant", "p_bee", "p_cat", "label", "entropy_total",
                                   "entropy_aleatoric", "mutual_information"]  # fmt: skip
    assert first.function_draws.dims == ("chain", "draw", "obs", "output")


def test_classifier_metrics_and_cli_predict(classifier_run, tmp_path, capsys):
    import json

    metrics = json.loads((classifier_run / "metrics.json").read_text())
    for key in ("accuracy", "log_loss", "brier", "ece", "lpd"):
        assert 0 <= abs(metrics[f"test_{key}"]) < 10
    assert metrics["test_log_loss"] == pytest.approx(-metrics["test_lpd"])
    assert "test_rmse" not in metrics
    table = tmp_path / "new.csv"
    family_table("categorical", rows=10, seed=4).drop(columns="y").to_csv(table, index=False)
    code, out, _ = run_cli(capsys, "predict", str(classifier_run), "--data", str(table))
    assert code == 0
    predicted = pd.read_csv(__import__("io").StringIO(out))
    assert len(predicted) == 10 and set(predicted["label"]) <= set(LABELS)


def test_classifier_report_renders(classifier_run, tmp_path, capsys):
    folder = tmp_path / "report"
    code, _, err = run_cli(capsys, "report", str(classifier_run), "--out", str(folder))
    assert code == 0, err
    problems, images, _ = open_in_chromium(folder, tmp_path / "page.png")
    assert problems == []
    alts = {alt for alt, *_ in images}
    assert {"reliability diagram", "confusion matrix",
            "predictive probability and mutual information over the inputs"} <= alts  # fmt: skip
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt


# -- every family through every way of fitting -----------------------------------------------


def _table_spec(tmp_path: Path, family: str, **inference: object) -> Spec:
    family_table(family).to_csv(tmp_path / f"{family}.csv", index=False)
    return Spec().with_overrides(
        network={"hidden": [3]},
        prior={"kind": "fixed"},
        likelihood={"family": family},
        data={"path": str(tmp_path / f"{family}.csv"), "target": "y", "test_fraction": 0.2},
        inference=inference,
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_fits_by_minibatch_advi(family, tmp_path):
    """Minibatch ADVI (the likelihood scaled up from 16 random rows) runs for every family and
    gives finite metrics of that family on the held-out rows."""
    spec = _table_spec(tmp_path, family, method="advi", iterations=200, draws=50, batch_size=16)
    fitted, metrics = fit(spec)
    scores = metrics.test.to_dict()
    assert all(np.isfinite(v) for v in scores.values())
    assert ("accuracy" in scores) == fitted.family.labelled
    assert ("deviance" in scores) == (family == "poisson")


@pytest.mark.parametrize("sampler", ["pymc", "nutpie", "numpyro", "blackjax"])
def test_every_sampler_fits_a_multi_output_classifier(sampler, tmp_path):
    """Integer class codes and a network with several outputs through each NUTS sampler."""
    from pmbnn.inference.samplers import SAMPLERS
    from tests.helpers import require_extra

    require_extra(*SAMPLERS[sampler].modules)
    spec = _table_spec(tmp_path, "categorical", draws=30, tune=30, sampler=sampler)
    fitted, metrics = fit(spec)
    assert fitted.posterior["w_out"].dims[-1] == "output"
    assert fitted.posterior.sizes["output"] == 3
    assert 0 <= metrics.test.accuracy <= 1 and np.isfinite(metrics.test.lpd)


# -- the built-in examples: each fitted, each showing what its family is for ---------------


def test_two_moons_example_classifies_and_knows_where_it_has_no_data():
    """PyMC's BNN example (2 x 5 tanh units, Bernoulli) by NUTS, shortened: test accuracy at
    least 0.93 (the data's noise allows about 0.97; measured 0.968 at 2 x 500 draws), and the
    mutual information at points far from the data (a ring of radius 4) at least 5x that on the
    test rows (measured ~20x)."""
    spec = load_builtin_spec("two-moons").with_overrides(inference={"draws": 200, "tune": 200})
    fitted, metrics = fit(spec)
    assert metrics.test.accuracy >= 0.93
    x_test, _ = fitted.test_data()
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    far = x_test.mean(axis=0) + 4 * np.column_stack([np.cos(angles), np.sin(angles)])
    on_data = fitted.predict(x_test).mutual_information.mean()
    assert fitted.predict(far).mutual_information.mean() > 5 * on_data


HETERO_DRAWS = {"draws": 200, "tune": 200}


@pytest.fixture(scope="module")
def hetero_run(tmp_path_factory) -> Path:
    """The hetero-sine example by NUTS, shortened, as a saved run. (Mean-field ADVI is no
    test of the family: it over-covers the quiet half, 0.98, as it understates nothing there.)"""
    folder = tmp_path_factory.mktemp("hetero")
    short = load_builtin_spec("hetero-sine").with_overrides(inference=HETERO_DRAWS)
    (folder / "hetero.toml").write_text(short.to_toml())
    out = folder / "run"
    assert run_cli_plain("fit", str(folder / "hetero.toml"), "--out", str(out)) == 0
    return out


def _coverage_by_noise(fitted) -> tuple[float, float]:
    """90% coverage on 2,000 fresh rows, where |x| < 2 (low noise) and where |x| >= 2."""
    from pmbnn.examples import hetero_sine

    fresh = hetero_sine(99, 2000)
    x, y = fresh[["x"]].to_numpy(), fresh["y"].to_numpy()
    prediction = fitted.predict(x)
    inside = (y >= prediction.quantiles[0.05]) & (y <= prediction.quantiles[0.95])
    quiet = np.abs(x[:, 0]) < 2
    return float(inside[quiet].mean()), float(inside[~quiet].mean())


def test_heteroscedastic_family_covers_both_the_quiet_and_the_noisy_half(hetero_run):
    """hetero-sine (noise sd 0.05 + 0.15 |x|) by NUTS: one noise sd over-covers where the noise
    is low and under-covers where it is high (measured at 2 x 500 draws: 0.98 and 0.80); a
    noise sd per input covers both within 0.05 of 0.9 (measured 0.93 and 0.88; 2,000 fresh
    rows: a binomial sd of ~0.01 per half)."""
    hetero = load_run(hetero_run)
    low, high = _coverage_by_noise(hetero)
    assert abs(low - 0.9) < 0.05 and abs(high - 0.9) < 0.05
    gaussian, _ = fit(hetero.spec.with_overrides(likelihood={"family": "gaussian"}))
    low, high = _coverage_by_noise(gaussian)
    assert low > 0.95 and high < 0.87


def test_heteroscedastic_report_renders(hetero_run, tmp_path, capsys):
    folder = tmp_path / "report"
    code, _, err = run_cli(capsys, "report", str(hetero_run), "--out", str(folder))
    assert code == 0, err
    problems, images, _ = open_in_chromium(folder, tmp_path / "page.png")
    assert problems == []
    assert "predictive mean with bands" in {alt for alt, *_ in images}
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt


def test_student_t_is_not_dragged_by_outliers():
    """outlier-sine (5% of targets shifted by 3 to 6) by ADVI (4,000 steps): the Student-t
    fit's predictive mean is closer to the clean rows than the Gaussian fit's (RMSE on 2,000
    fresh clean rows; by NUTS 0.105 against 0.274, benchmarks/families.py)."""
    from pmbnn.examples import outlier_sine

    fresh = outlier_sine(99, 2000)
    clean = fresh[fresh["outlier"] == 0]
    rmse = {}
    for family in ("student_t", "gaussian"):
        spec = load_builtin_spec("outlier-sine").with_overrides(
            likelihood={"family": family}, inference={"method": "advi", "iterations": 4000}
        )
        fitted, _ = fit(spec)
        mean = fitted.predict(clean[["x"]]).mean
        rmse[family] = float(np.sqrt(np.mean((mean - clean["y"].to_numpy()) ** 2)))
    assert rmse["student_t"] < 0.8 * rmse["gaussian"], rmse


@pytest.mark.parametrize("batch_size", [None, 10])
def test_a_fixed_noise_sd_is_in_the_targets_units(blr_spec, batch_size):
    """[likelihood].sigma is the user's noise sd in y's units whether or not the target is
    standardized: the model divides it by the training target's sd and predictions carry it
    back exactly. A model refitted to other rows of the same count (a Refitter swaps the data,
    minibatch ADVI its own model's too) takes their sd: it fits as a fresh model would."""
    from pmbnn.data import load_split
    from pmbnn.pipeline import Refitter, fit_split
    from tests.helpers import BLR_NOISE_SD, BLR_PROBES

    spec = blr_spec.with_overrides(
        data={"standardize": True},
        inference={"method": "advi", "iterations": 300, "draws": 50, "batch_size": batch_size},
    )
    data, train, _ = load_split(spec.data, spec.inference.seed)
    halves = (train[: len(train) // 2], train[len(train) // 2 :])
    refitter, unit = Refitter(), []
    for rows in halves:
        fitted, _ = fit_split(spec, data, rows, rows[:0], refitter=refitter)
        unit.append(fitted.scaler.y_scale)
        np.testing.assert_allclose(fitted.predict(BLR_PROBES).sd_aleatoric, BLR_NOISE_SD)
        observed = fitted.model.model["y"]  # Normal(mu, sigma): sigma on the model's scale
        assert observed.owner.inputs[-1].eval() == pytest.approx(BLR_NOISE_SD / unit[-1])
        assert float(fitted.trace["constant_data"]["y_scale"]) == unit[-1]
    assert abs(unit[0] - unit[1]) > 0.02  # the unit changed between the fits (by 5% here)
    fresh, _ = fit_split(spec, data, halves[1], halves[1][:0], refitter=Refitter())
    np.testing.assert_allclose(
        fitted.posterior["w_out"].values, fresh.posterior["w_out"].values, rtol=1e-9
    )
