"""The built-in sine-gap example, fitted by NUTS as `python -m pmbnn fit` does."""

from __future__ import annotations

import json

import numpy as np

from pmbnn.examples import SINE_GAP, SINE_NOISE_SD


def test_epistemic_uncertainty_grows_in_the_gap(sine_fitted):
    inside = np.linspace(SINE_GAP[0] + 0.25, SINE_GAP[1] - 0.25, 9)[:, None]
    x_train = (
        sine_fitted.scaler.x_mean
        + sine_fitted.scaler.x_scale * sine_fitted.trace["constant_data"]["X"].values
    )
    gap_sd = sine_fitted.predict(inside).sd_epistemic.mean()
    train_sd = sine_fitted.predict(x_train).sd_epistemic.mean()
    # "Several times": a point estimate gives ratio 0 / 0 and an over-smoothed posterior ~1.
    assert gap_sd > 3 * train_sd, (gap_sd, train_sd)


def test_test_metrics(sine_run):
    metrics = json.loads((sine_run / "metrics.json").read_text())
    # The noise floor is SINE_NOISE_SD = 0.1; predicting the mean alone gives RMSE ~0.7 (sd of
    # sin on [-4, 4]). Twice the noise floor separates a fitted curve from a failed one.
    assert metrics["test_rmse"] < 2 * SINE_NOISE_SD
    # 24 test points: Binomial(24, 0.9) puts 99% of its mass on 18..24 hits, i.e. >= 0.75.
    assert metrics["n_test"] == 24
    assert 0.75 <= metrics["test_coverage_90"] <= 1.0
    # Gaussian noise of sd 0.1 has log density -log(0.1 sqrt(2 pi e)) ~ 0.88 per point at best;
    # a fit with predictive sd ~0.7 (no signal learned) would score about -1.07.
    assert 0.3 < metrics["test_lpd"] < 1.0


def test_aleatoric_sd_recovers_the_noise(sine_fitted):
    prediction = sine_fitted.predict(np.array([[-3.0], [2.5]]))
    # sigma is learned from 96 points: its posterior sd is ~ sigma / sqrt(2 * 96) ~ 7%.
    np.testing.assert_allclose(prediction.sd_aleatoric, SINE_NOISE_SD, rtol=0.3)
    assert np.all(prediction.sd_total >= prediction.sd_aleatoric)


def test_nuts_trace_layout(sine_fitted):
    posterior = sine_fitted.trace["posterior"]
    assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 500
    assert set(posterior.data_vars) == {"w_0", "b_0", "w_1", "b_1", "w_out", "b_out", "sigma"}
    assert posterior["w_1"].dims == ("chain", "draw", "unit_0", "unit_1")
    assert "diverging" in sine_fitted.trace["sample_stats"]
