"""diagnose: good fits pass, bad fits are flagged, and weight-space symmetry does not decide."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from xarray import DataTree

from pmbnn.diagnostics import FAIL, INFO, OK, diagnose, probe_inputs
from pmbnn.inference.advi import PLATEAU_Z, plateau_z
from tests.cli_helpers import assert_usage_error, run_cli


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


def test_permuted_hidden_units_raise_weight_rhat_only(sine_fitted, sine_diagnosis):
    """Relabel the hidden units of one chain: the network and every prediction are unchanged,
    so function-space checks must not move while weight R-hat must jump."""
    trace = sine_fitted.trace.copy(deep=True)
    posterior = trace["posterior"].to_dataset()
    width = posterior.sizes["unit_0"]
    permuted = posterior.copy(deep=True)
    order = np.roll(np.arange(width), 3)
    chain = {"chain": 1}
    for name, dim in [("w_0", "unit_0"), ("b_0", "unit_0"), ("w_1", "unit_0")]:
        moved = posterior[name].isel(chain).isel({dim: order})
        permuted[name].loc[chain] = moved.values
    trace["posterior"] = DataTree(permuted)
    fitted = replace(sine_fitted, trace=trace)  # a new object: model and network are rebuilt

    diagnosis = diagnose(fitted)
    weights = diagnosis.check("r_hat_weights")
    assert weights.verdict == INFO and weights.value > 1.5, weights
    before = sine_diagnosis.check("r_hat_function").value
    assert diagnosis.check("r_hat_function").value == pytest.approx(before, rel=1e-9)
    assert diagnosis.verdict == sine_diagnosis.verdict


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


def test_plateau_statistic():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=2000)
    # Flat noisy loss: the drop between windows is N(0, 1) in standard errors.
    assert abs(plateau_z(100 + noise, 1000)) < PLATEAU_Z
    # Falling by 0.01 per iteration: a drop of 10 per window against a standard error of ~0.045.
    assert plateau_z(100 - 0.01 * np.arange(2000) + noise, 1000) > 100


def test_diagnose_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "diagnose", str(tmp_path))
    assert_usage_error(code, err, "is not a pmbnn run")


def diagnose_json(capsys, run) -> dict:
    code, out, _ = run_cli(capsys, "diagnose", str(run), "--json")
    assert code == 0
    return json.loads(out)
