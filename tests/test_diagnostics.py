"""diagnose: good fits pass, bad fits are flagged, and weight-space symmetry does not decide."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from xarray import DataTree

from pmbnn.diagnostics import FAIL, INFO, OK, Thresholds, diagnose, probe_inputs
from pmbnn.loss import PLATEAU_Z, plateau_z
from pmbnn.pipeline import fit
from pmbnn.predictive_checks import relative_efficiency
from pmbnn.run import load_run
from pmbnn.spec import Spec
from pmbnn.trace import LOG_LIKELIHOOD, OBSERVED
from tests.helpers import assert_usage_error, fitted_run, run_cli


@pytest.fixture(scope="module")
def sine_diagnosis(sine_fitted):
    return diagnose(sine_fitted)


def test_good_nuts_fit_is_not_flagged(sine_diagnosis, sine_run, capsys):
    assert sine_diagnosis.verdict != FAIL
    for name in ("r_hat_function", "ess_bulk", "ess_tail", "divergences", "e_bfmi"):
        assert sine_diagnosis.check(name).verdict == OK, sine_diagnosis.check(name)
    code, out, _ = run_cli(capsys, "diagnose", str(sine_run), "--strict")
    assert code == 0
    assert "R-hat, function values" in out and "verdict:" in out


def test_function_space_covers_train_and_test_probes(sine_fitted, sine_diagnosis):
    x, labels = probe_inputs(sine_fitted)
    assert len(x) == len(labels) == 16  # 8 of the 96 training rows and 8 of the 24 test rows
    assert sum(label.startswith("test") for label in labels) == 8
    again, _ = probe_inputs(sine_fitted)
    np.testing.assert_array_equal(x, again)  # fixed, so diagnoses are comparable
    quantities = [row["quantity"] for row in sine_diagnosis.quantities]
    assert quantities[0] == "sigma" and len(quantities) == 17
    assert {"mcse_mean", "ess_bulk", "ess_tail", "r_hat"} <= set(sine_diagnosis.quantities[0])


@pytest.fixture(scope="module")
def one_unit_fit(tmp_path_factory):
    """y = 2 tanh(1.5 x) + noise through one tanh unit: two well-separated posterior modes,
    (w_0, b_0, w_out) and its sign flip (-w_0, -b_0, -w_out), which give the same function."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, 60)
    path = tmp_path_factory.mktemp("one-unit") / "tanh.csv"
    pd.DataFrame({"x": x, "y": 2 * np.tanh(1.5 * x) + 0.1 * rng.normal(size=60)}).to_csv(
        path, index=False
    )
    spec = Spec().with_overrides(
        network={"hidden": [1]},
        data={"path": str(path), "target": "y", "features": ["x"], "test_fraction": 0.0},
        inference={"method": "nuts", "tune": 300, "draws": 300},
    )
    fitted, _ = fit(spec)
    return fitted


def with_second_chain(fitted, sign: float):
    """Chain 1 replaced by chain 0, optionally sign-flipped: the same functions either way."""
    trace = fitted.trace.copy(deep=True)
    posterior = trace["posterior"].to_dataset()
    for name in posterior.data_vars:
        flip = sign if name in ("w_0", "b_0", "w_out") else 1.0
        posterior[name].loc[{"chain": 1}] = flip * posterior[name].sel(chain=0).values
    trace["posterior"] = DataTree(posterior)
    return fitted.with_trace(trace)  # a new object: model and network are rebuilt


def test_symmetric_modes_raise_weight_rhat_only(one_unit_fit):
    same = diagnose(with_second_chain(one_unit_fit, 1.0))
    flipped = diagnose(with_second_chain(one_unit_fit, -1.0))
    # The chains sit in mirror-image modes: every weight disagrees ...
    assert flipped.check("r_hat_weights").value > 1.5
    assert same.check("r_hat_weights").value < 1.1
    # ... yet the networks are the same functions, so nothing that is judged changes.
    for name in ("r_hat_function", "r_hat_sigma", "ess_bulk", "ess_tail"):
        assert flipped.check(name).value == pytest.approx(same.check(name).value, rel=1e-9)
    assert flipped.check("r_hat_weights").verdict == INFO
    assert flipped.verdict == same.verdict


def test_short_nuts_run_is_flagged(short_nuts_run, capsys):
    code, out, _ = run_cli(capsys, "diagnose", str(short_nuts_run), "--json")
    assert code == 0  # without --strict, diagnose reports and succeeds
    result = json.loads(out)
    assert result["verdict"] == FAIL
    checks = {c["name"]: c for c in result["checks"]}
    # 2 chains x 15 draws cannot reach 100 effective draws.
    assert checks["ess_bulk"]["verdict"] == FAIL and checks["ess_bulk"]["value"] < 100
    assert all(c["hint"] and c["threshold"] for c in result["checks"])
    code, out, _ = run_cli(capsys, "diagnose", str(short_nuts_run), "--strict")
    assert code == 1
    assert "FAIL" in out and "->" in out  # the failing check prints its hint


def test_short_advi_run_is_flagged(short_advi_run, capsys):
    code, _, _ = run_cli(capsys, "diagnose", str(short_advi_run), "--strict")
    assert code == 1
    result = diagnose_json(capsys, short_advi_run)
    loss = next(c for c in result["checks"] if c["name"] == "loss_convergence")
    assert loss["verdict"] == FAIL and "300 iterations" in loss["detail"]
    assert "r_hat_function" not in {c["name"] for c in result["checks"]}  # not MCMC draws


def test_advi_reports_pareto_k(small_advi_run, capsys):
    result = diagnose_json(capsys, small_advi_run)
    names = [c["name"] for c in result["checks"]]
    assert names == ["loss_convergence", "pareto_k"]
    khat = result["checks"][1]
    assert np.isfinite(khat["value"]) and khat["threshold"].startswith("<= 0.5")


def test_khat_limits_follow_the_number_of_draws():
    """PSIS is reliable only for k below 1 - 1/log10(S) (Vehtari et al. 2024), at most 0.7: a
    fixed 0.7 passed k-hats that 200 draws cannot estimate."""
    assert Thresholds().khat_limits(100) == pytest.approx((0.5, 0.5))
    assert Thresholds().khat_limits(1000) == pytest.approx((0.5, 2 / 3))
    assert Thresholds().khat_limits(10**8) == pytest.approx((0.5, 0.7))
    assert Thresholds().khat_limits(25) == pytest.approx((1 - 1 / np.log10(25),) * 2)
    assert Thresholds(khat_fail=0.9).khat_limits(25) == (0.5, 0.9)  # a user's own limit


def test_loo_weighs_draws_by_the_efficiency_of_the_likelihood_not_of_the_weights():
    """Two chains in mirrored copies of one network (a weight's chains at +5 and -5) with the
    same likelihoods: ArviZ's default r_eff, the mean ESS of every posterior variable, counts
    the weight's chains as disagreeing; the likelihood's own efficiency is about 1."""
    from arviz_stats.loo.loo_helper import _get_r_eff

    rng = np.random.default_rng(3)
    dims = ("chain", "draw")
    weight = np.stack([5 + 0.1 * rng.normal(size=400), -5 + 0.1 * rng.normal(size=400)])
    trace = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"w": (dims, weight)}),
        LOG_LIKELIHOOD: xr.Dataset({OBSERVED: ((*dims, "obs"), rng.normal(size=(2, 400, 30)))}),
    })  # fmt: skip
    assert _get_r_eff(trace, 800) < 0.05
    assert 0.8 < relative_efficiency(trace) < 1.2


def test_plateau_statistic():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=2000)
    # Flat noisy loss: the drop between windows is N(0, 1) in standard errors.
    assert abs(plateau_z(100 + noise, 1000)) < PLATEAU_Z
    # Falling by 0.01 per iteration: a drop of 10 per window. The trend inside a window adds
    # 0.01^2 * 1000^2 / 12 = 8.3 to each window's variance, so the standard error is
    # sqrt(2 * 9.3 / 1000) = 0.14 and z is about 73.
    assert 60 < plateau_z(100 - 0.01 * np.arange(2000) + noise, 1000) < 90


def test_diagnose_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "diagnose", str(tmp_path))
    assert_usage_error(code, err, "is not a pmbnn run")


def diagnose_json(capsys, run) -> dict:
    code, out, _ = run_cli(capsys, "diagnose", str(run), "--json")
    assert code == 0
    return json.loads(out)


def test_khat_with_too_few_draws_fails_and_says_why(tmp_path_factory):
    """PSIS fits the largest 20% of the ratios and needs 5 of them: 10 draws cannot judge q."""
    fitted = load_run(
        fitted_run(tmp_path_factory, "few-draws", method="advi", iterations=300, draws=10)
    )
    check = diagnose(fitted).check("pareto_k")
    assert check.verdict == FAIL and check.value is None
    assert "only 10 draws from q" in check.detail
