"""report: one self-contained page plus report.json, for NUTS and ADVI runs, checked in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

from pmbnn.diagnostics import diagnose
from pmbnn.mixture import mixture_quantiles, predictive_cdf
from pmbnn.predictive_checks import COVERAGE_LEVELS, calibration, loo
from pmbnn.run import load_run
from tests.helpers import assert_usage_error, open_in_chromium, run_cli, strict_json


@pytest.fixture(scope="session")
def nuts_report(sine_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "nuts"
    assert run_report(sine_run, out) == 0
    return out


@pytest.fixture(scope="session")
def advi_report(small_advi_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "advi"
    assert run_report(small_advi_run, out) == 0
    return out


def run_report(run: Path, out: Path) -> int:
    from pmbnn.cli import main

    return main(["report", str(run), "--out", str(out)])


def test_nuts_report_numbers(nuts_report, sine_fitted):
    numbers = strict_json((nuts_report / "report.json").read_text())
    assert numbers["diagnostics"]["verdict"] == diagnose(sine_fitted).verdict
    assert numbers["spec"]["inference"]["method"] == "nuts"
    coverage = numbers["calibration"]["coverage"]
    assert [row["nominal"] for row in coverage] == list(COVERAGE_LEVELS)
    # The 90% row is the fit's own test_coverage_90: two routes to one number.
    row_90 = next(row for row in coverage if row["nominal"] == 0.9)
    assert row_90["empirical"] == pytest.approx(numbers["metrics"]["test_coverage_90"])
    assert numbers["loo"]["n"] == 96 and not numbers["loo"]["approximate_posterior_correction"]
    # elpd_loo per point estimates the same quantity as the test log density (different rows):
    # both near 0.8 for noise sd 0.1; a broken log-likelihood would be off by units.
    assert abs(numbers["loo"]["elpd_loo_per_point"] - numbers["metrics"]["test_lpd"]) < 0.3
    page = (nuts_report / "index.html").read_text()
    for section in ("Diagnostics", "Convergence", "Posterior predictive check", "Calibration",
                    "PSIS-LOO", "spec.toml"):  # fmt: skip
        assert section in page
    for alt in (
        "trace plots",
        "rank plots",
        "energy plot",
        "E-BFMI per chain",
        "posterior predictive check",
        "predictive mean with bands",
        "coverage plot",
        "PIT histogram",
        "Pareto k",
    ):
        assert f'alt="{alt}' in page, alt  # fmt: skip


def test_advi_report_numbers(advi_report, small_advi_run):
    numbers = strict_json((advi_report / "report.json").read_text())
    checks = [c["name"] for c in numbers["diagnostics"]["checks"]]
    assert checks == ["loss_convergence", "pareto_k"]
    assert numbers["loo"]["approximate_posterior_correction"]
    page = (advi_report / "index.html").read_text()
    assert 'alt="ADVI loss curve"' in page and 'alt="energy plot"' not in page
    # An ARD run: the scales' prior against posterior, and each input's scale.
    assert 'alt="prior and posterior of each layer\'s weight scale"' in page
    assert 'alt="posterior of each input feature\'s scale"' in page
    prior_vs_posterior = numbers["prior_and_posterior"]["sd"]
    assert {"prior f", "prior y", "posterior f", "posterior y"} <= set(prior_vs_posterior)
    observed = prior_vs_posterior["observed"]
    fitted = load_run(small_advi_run)
    assert observed == pytest.approx(np.std(fitted.training_data()[1]))
    # The plotted intervals as numbers: every input once, largest median first, each the
    # quantiles of that input's own draws.
    scales = numbers["feature_scales"]
    assert sorted(row["feature"] for row in scales) == sorted(fitted.feature_names)
    medians = [row["q50"] for row in scales]
    assert medians == sorted(medians, reverse=True)
    draws = fitted.posterior["feature_scale"]
    for row in scales:
        own = draws.sel(feature=row["feature"]).values.ravel()
        assert row["q05"] <= row["q25"] <= row["q50"] <= row["q75"] <= row["q95"]
        assert row["q50"] == pytest.approx(np.quantile(own, 0.5))


def test_report_is_self_contained(nuts_report):
    page = (nuts_report / "index.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources
    assert "http://" not in page and "https://" not in page


def test_report_does_not_overwrite(nuts_report, sine_run, capsys):
    before = (nuts_report / "report.json").read_bytes()
    code, _, err = run_cli(capsys, "report", str(sine_run), "--out", str(nuts_report))
    assert_usage_error(code, err, "already exists", "--force")
    assert (nuts_report / "report.json").read_bytes() == before


def test_force_rebuilds_the_same_numbers(advi_report, small_advi_run, capsys):
    before = (advi_report / "report.json").read_bytes()
    code, out, _ = run_cli(capsys, "report", str(small_advi_run), "--out", str(advi_report),
                           "--force")  # fmt: skip
    assert code == 0 and "index.html" in out
    assert (advi_report / "report.json").read_bytes() == before  # same run, same numbers
    assert not [p for p in advi_report.parent.iterdir() if p.name.startswith(".")]  # no debris


def test_report_without_a_test_split(blr_spec, tmp_path, capsys):
    spec = tmp_path / "blr.toml"
    spec.write_text(blr_spec.with_overrides(inference={"draws": 300, "tune": 300}).to_toml())
    run_cli(capsys, "fit", str(spec), "--out", str(tmp_path / "run"))
    code, _, _ = run_cli(capsys, "report", str(tmp_path / "run"), "--out", str(tmp_path / "rep"))
    assert code == 0
    numbers = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert numbers["calibration"] is None and numbers["loo"]["n"] == 40
    # Fixed noise: nothing to judge about sigma (a constant has no R-hat), and no false FAIL.
    checks = {c["name"]: c["verdict"] for c in numbers["diagnostics"]["checks"]}
    assert "r_hat_sigma" not in checks and "r_hat_function" in checks, checks
    assert numbers["diagnostics"]["verdict"] != "FAIL", checks
    assert "has no stored test split" in (tmp_path / "rep" / "index.html").read_text()


def test_calibration_is_exact_for_the_predictive_mixture(sine_fitted):
    """The PIT of a predictive quantile is its level; coverage counts agree with the bounds."""
    x_test, _ = sine_fitted.test_data()
    distribution = sine_fitted.distribution(x_test)
    f, sigma = distribution.loc, distribution.scale
    levels = (0.05, 0.5, 0.95)
    for level, bound in zip(levels, mixture_quantiles(f, sigma, levels), strict=True):
        np.testing.assert_allclose(predictive_cdf(f, sigma, bound), level, atol=1e-9)
    result = calibration(sine_fitted)
    assert np.all(np.diff(result.coverage) >= 0)  # nested intervals
    assert np.all((result.pit > 0) & (result.pit < 1))


def test_loo_matches_importance_sampling_where_k_is_small(sine_fitted):
    """PSIS-LOO smooths only the tail of the raw importance weights 1 / p(y_i | theta_s). Where
    k < 0.5 their variance is finite, and the plain estimate log 1 / mean_s(1 / p) must agree
    with ArviZ's pointwise elpd to within 3 of its own Monte Carlo standard errors (draws
    treated as independent; measured: at most 0.5 of one)."""
    result = loo(sine_fitted)
    log_lik = sine_fitted.trace["log_likelihood"]["y"].values.reshape(-1, 96)
    plain = -(logsumexp(-log_lik, axis=0) - np.log(len(log_lik)))
    weights = np.exp(-log_lik - (-log_lik).max(axis=0))
    mcse = weights.std(axis=0) / weights.mean(axis=0) / np.sqrt(len(log_lik))
    k, elpd_i = np.asarray(result["pareto_k"]), np.asarray(result["elpd_i"])
    small = k < 0.5
    assert small.sum() > 80
    np.testing.assert_array_less(np.abs(elpd_i[small] - plain[small]), 3 * mcse[small])
    assert result["elpd_loo"] == pytest.approx(elpd_i.sum())


@pytest.mark.parametrize("report", ["nuts_report", "advi_report"])
def test_page_renders_in_chromium(report, request, tmp_path):
    folder: Path = request.getfixturevalue(report)
    numbers = json.loads((folder / "report.json").read_text())
    problems, images, rows = open_in_chromium(folder, tmp_path / "page.png")
    assert problems == []
    assert len(images) >= 7  # the prior-and-posterior panel included
    assert "prior and posterior predictive statistics against the observed value" in {
        alt for alt, *_ in images
    }
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    assert rows == 1 + len(numbers["diagnostics"]["checks"])  # header + one row per check
    assert (tmp_path / "page.png").stat().st_size > 50_000


@pytest.mark.parametrize("infinite", [1, 4])
def test_residual_figure_keeps_the_finite_rows_when_some_sd_is_infinite(infinite):
    """Student-t draws with nu <= 2 have an infinite sd: the figure plots the other rows (an
    axis up to infinity would hold none) and computes nothing undefined on the way."""
    import warnings

    from pmbnn.predictive_checks import Calibration
    from pmbnn.report.figures import residuals

    rows = 4
    sd = np.array([0.5, 1.0, 2.0, 1.5])
    sd[:infinite] = np.inf
    empty = np.array([])
    checks = Calibration("test", empty, empty, empty, empty, empty, np.full(rows, 0.5),
                         np.array([0.1, -0.4, 1.2, 0.3]), sd, sd)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 * inf in the wedge's edge would warn
        image = residuals(checks)
    assert isinstance(image, str) and len(image) > 100
