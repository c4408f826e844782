"""Learned weight scales: the non-centred prior is the centred one, the scales learn from data,
ARD finds the input that carries no signal, NUTS on a hierarchical BNN passes diagnose (and a
starved run does not), and prediction reads the weights whatever the prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import pmbnn
from pmbnn.data import Dataset, Standardizer
from pmbnn.diagnostics import FAIL, OK, diagnose
from pmbnn.model import build_model, parameter_shapes
from pmbnn.predict import NetworkFunction
from pmbnn.prior_check import prior_predictive_on_rows
from pmbnn.run import load_run, save_run
from pmbnn.spec import Spec
from pmbnn.trace import FEATURE_SCALE, LAYER_SCALE, SAMPLE_DIMS
from tests.helpers import require_extra

# Data from a network whose first layer is 3x wider than the fixed default prior's
# (w_0 ~ N(0, 3 / sqrt(2))), plus a third input that the target does not depend on.
WIDE_ROWS, WIDE_HIDDEN, TRUE_INPUT_SCALE, TRUE_OUTPUT_SCALE, WIDE_NOISE = 200, 8, 3.0, 2.0, 0.1
HYPERPRIOR_SCALE = 1.0  # HalfNormal(1): mode 0, mean 0.80, median 0.67; far below the truth
TWO_SAMPLE_DRAWS = 4000


@pytest.fixture(scope="session")
def wide_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(WIDE_ROWS, 3))
    w_0 = rng.normal(0, TRUE_INPUT_SCALE / np.sqrt(2), size=(2, WIDE_HIDDEN))
    b_0 = rng.normal(0, 1, WIDE_HIDDEN)
    w_out = rng.normal(0, TRUE_OUTPUT_SCALE / np.sqrt(WIDE_HIDDEN), size=WIDE_HIDDEN)
    y = np.tanh(x[:, :2] @ w_0 + b_0) @ w_out + WIDE_NOISE * rng.normal(size=WIDE_ROWS)
    path = tmp_path_factory.mktemp("data") / "wide.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "noise": x[:, 2], "y": y}).to_csv(path, index=False)
    return path


def _nuts_spec(csv: Path, kind: str, features: list[str]) -> Spec:
    return Spec().with_overrides(
        network={"hidden": [WIDE_HIDDEN]},
        prior={"kind": kind, "scale_prior_scale": HYPERPRIOR_SCALE},
        data={"path": str(csv), "target": "y", "features": features, "test_fraction": 0.0},
        inference={"sampler": "numpyro", "draws": 500, "tune": 500, "seed": 1},
    )


@pytest.fixture(scope="session")
def hierarchical_fit(wide_csv):
    require_extra("numpyro")
    return pmbnn.fit(_nuts_spec(wide_csv, "hierarchical", ["a", "b"]))


@pytest.fixture(scope="session")
def ard_fit(wide_csv):
    require_extra("numpyro")
    return pmbnn.fit(_nuts_spec(wide_csv, "ard", ["a", "b", "noise"]))[0]


def _prior_f(spec: Spec, seed: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2))
    rows = Dataset(x, rng.normal(size=20), ["a", "b"], "y", "test")
    scaler = Standardizer.fit(rows.x, rows.y, enabled=False)
    spec = spec.with_overrides(inference={"seed": seed})
    return prior_predictive_on_rows(spec, rows, scaler, TWO_SAMPLE_DRAWS).f


@pytest.mark.parametrize("kind", ["hierarchical", "ard"])
def test_noncentred_prior_is_the_centred_prior(kind):
    """w = s / sqrt(fan-in) * z with z ~ N(0, 1) is w ~ N(0, s / sqrt(fan-in)): the network's
    prior output agrees in distribution (Kolmogorov-Smirnov, 4000 independent draws each) at
    three inputs and in its spread over inputs. Same-distribution p-values are uniform; at
    alpha = 0.001 a false alarm among the 8 checks has probability < 1%. The same check tells
    a hyperprior of half the scale apart (p < 1e-6), so it has the power to see a wrong form."""
    spec = Spec().with_overrides(network={"hidden": [5]}, prior={"kind": kind})
    noncentred = _prior_f(spec, seed=1)
    centred = _prior_f(spec.with_overrides(prior={"kind": kind, "centred": True}), seed=2)
    narrower = _prior_f(spec.with_overrides(prior={"kind": kind, "scale_prior_scale": 1.0}), 3)
    for column in (0, 7, 19):
        assert stats.ks_2samp(noncentred[:, column], centred[:, column]).pvalue > 1e-3
    assert stats.ks_2samp(noncentred.std(axis=1), centred.std(axis=1)).pvalue > 1e-3
    assert stats.ks_2samp(noncentred.std(axis=1), narrower.std(axis=1)).pvalue < 1e-6


def test_layer_scale_learns_from_the_data(hierarchical_fit):
    """The first layer's scale moves from the hyperprior (mean 0.80, mode 0) toward the 3.0
    the data were made with: its posterior mean is nearer the truth than the prior mean, and
    95% of its posterior lies above the hyperprior's median."""
    fitted, _ = hierarchical_fit
    scale = fitted.posterior[LAYER_SCALE].sel(layer="0")
    prior_mean = HYPERPRIOR_SCALE * np.sqrt(2 / np.pi)
    assert abs(float(scale.mean()) - TRUE_INPUT_SCALE) < abs(prior_mean - TRUE_INPUT_SCALE) / 2
    assert float(scale.quantile(0.05)) > HYPERPRIOR_SCALE * 0.6745  # HalfNormal's median


def test_ard_gives_the_noise_input_the_smallest_scale(ard_fit):
    scales = ard_fit.posterior[FEATURE_SCALE].median(SAMPLE_DIMS).to_series()
    assert scales.idxmin() == "noise"
    assert scales["noise"] < 0.25 * scales.drop("noise").min()  # measured: 0.06 against 2.1


def test_hierarchical_nuts_passes_diagnose_and_judges_the_scales(hierarchical_fit):
    diagnosis = diagnose(hierarchical_fit[0])
    assert diagnosis.verdict != FAIL, [(c.name, c.verdict) for c in diagnosis.checks]
    assert diagnosis.check("r_hat_scales").value < 1.01
    assert {"layer_scale[0]", "layer_scale[out]"} <= {q["quantity"] for q in diagnosis.quantities}


def test_starved_hierarchical_nuts_fails(wide_csv):
    """Ten tuning steps and ten draws of the same model: the scales' R-hat and the ESS FAIL."""
    spec = _nuts_spec(wide_csv, "hierarchical", ["a", "b"])
    require_extra("numpyro")
    fitted, _ = pmbnn.fit(spec.with_overrides(inference={"tune": 10, "draws": 10}))
    diagnosis = diagnose(fitted)
    assert diagnosis.verdict == FAIL
    assert diagnosis.check("ess_bulk").verdict == FAIL
    assert diagnosis.check("r_hat_scales").verdict != OK  # the scales themselves are judged


def test_hierarchical_run_round_trips(hierarchical_fit, tmp_path):
    """A run with learned scales saves, verifies (its variables are those parameter_shapes
    names) and predicts the same numbers after loading."""
    fitted, metrics = hierarchical_fit
    save_run(fitted, metrics, tmp_path / "run")
    loaded = load_run(tmp_path / "run")
    assert set(loaded.posterior.data_vars) == set(parameter_shapes(loaded.spec, 2))
    x = np.array([[0.0, 0.0], [1.5, -1.0]])
    np.testing.assert_array_equal(loaded.predict(x).mean, fitted.predict(x).mean)


@pytest.mark.parametrize("kind", ["fixed", "hierarchical", "ard"])
def test_forward_pass_reads_the_weights_whatever_the_prior(kind):
    """The compiled forward pass equals tanh(x w_0 + b_0) w_out + b_out on prior draws: the
    learned scales reach predictions only through the weights stored in the trace."""
    import pymc as pm

    rng = np.random.default_rng(5)
    x = rng.normal(size=(30, 3))
    spec = Spec().with_overrides(network={"hidden": [4]}, prior={"kind": kind})
    bnn = build_model(spec, x, rng.normal(size=30), ["a", "b", "c"], target_scale=1.0)
    with bnn.model:
        draws = pm.sample_prior_predictive(draws=6, random_seed=1).prior
    assert set(parameter_shapes(spec, 3)) <= set(draws.data_vars)
    w_0, b_0, w_out, b_out = (
        draws[name].stack(sample=SAMPLE_DIMS).transpose("sample", ...).values
        for name in ("w_0", "b_0", "w_out", "b_out")
    )
    hidden = np.tanh(np.einsum("nd,sdk->snk", x, w_0) + b_0[:, None, :])
    expected = np.einsum("snk,sk->sn", hidden, w_out) + b_out[:, None]
    np.testing.assert_allclose(NetworkFunction(bnn)(draws, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hidden", [[4], []])
def test_weights_have_the_declared_prior_sd(hidden):
    """Closed form, on 4000 prior draws: each weight divided by its declared sd, s / sqrt(fan-in)
    with s the drawn layer or feature scale, is N(0, 1). Its sample sd is within 5% of 1 (the
    sd of a sample sd of 4000 * fan-out normals is below 1.2%, so 5% is over 4 of them); with
    no hidden layer, ARD's per-feature scales are the only ones (no layer scale)."""
    import pymc as pm

    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 3))
    spec = Spec().with_overrides(network={"hidden": hidden}, prior={"kind": "ard"})
    bnn = build_model(spec, x, rng.normal(size=10), ["a", "b", "c"], target_scale=1.0)
    names = [FEATURE_SCALE, "w_0" if hidden else "w_out"] + ([LAYER_SCALE, "w_out"] * bool(hidden))
    draws = dict(
        zip(names, pm.draw([bnn.model[n] for n in names], draws=4000, random_seed=2), strict=True)
    )
    first = draws["w_0" if hidden else "w_out"] * np.sqrt(3)
    first = first / (draws[FEATURE_SCALE][:, :, None] if hidden else draws[FEATURE_SCALE])
    assert abs(first.std() - 1) < 0.05 and abs(first.mean()) < 0.05
    if hidden:
        assert set(parameter_shapes(spec, 3)) >= {LAYER_SCALE, FEATURE_SCALE}
        output = draws["w_out"] * np.sqrt(4) / draws[LAYER_SCALE][:, :1]
        assert abs(output.std() - 1) < 0.05
    else:
        assert LAYER_SCALE not in bnn.model.named_vars
        assert LAYER_SCALE not in parameter_shapes(spec, 3)
