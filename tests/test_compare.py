"""pmbnn compare: ArviZ's compare on the runs' own PSIS-LOO, test LPD beside it, and runs that
cannot be compared refused."""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pytest

from pmbnn.compare import compare_fitted, compare_runs
from pmbnn.errors import PmbnnError
from pmbnn.run import load_metrics, load_run
from pmbnn.trace import LOG_LIKELIHOOD, TEST_DATA
from tests.helpers import assert_usage_error, fitted_run, run_cli, strict_json


@pytest.fixture(scope="module")
def comparison(short_advi_run, short_nuts_run):
    """Two runs of the same rows (the built-in example, seed 0): ADVI and NUTS."""
    return compare_runs([short_advi_run, short_nuts_run])


@pytest.mark.filterwarnings("ignore:Estimated shape parameter")  # 30 draws: high k expected
def test_differences_and_weights_are_arviz_compare_of_the_same_loo(comparison, short_nuts_run):
    # The same ELPDData objects through ArviZ directly: only float round-off may differ.
    expected = azs.compare(comparison.loo, method="stacking", round_to="none")
    assert list(comparison.table.index) == list(expected.index)
    for column in ("elpd", "se", "p", "elpd_diff", "dse", "weight"):
        np.testing.assert_allclose(
            comparison.table[column], expected[column], rtol=1e-9, atol=1e-9, err_msg=column
        )
    assert comparison.table["weight"].sum() == pytest.approx(1)
    # ... and those are the runs' own PSIS-LOO: for NUTS, ArviZ's loo on the stored
    # log-likelihood (the ADVI run's adds the log p - log q correction, as its report does).
    own = azs.loo(load_run(short_nuts_run).trace, pointwise=True)
    assert comparison.loo["short-nuts"].elpd == pytest.approx(own.elpd, rel=1e-12)
    numbers = comparison.to_dict()
    assert [run["run"] for run in numbers["runs"]] == list(expected.index)
    assert numbers["runs"][0]["elpd_diff"] == 0 and numbers["runs"][0]["p_worse"] is None
    for run in numbers["runs"]:
        k = np.asarray(comparison.loo[run["run"]].pareto_k)
        assert (
            run["high_k"]
            == np.sum(k > run["k_threshold"])
            == sum(run["k_counts"].values()) - (np.sum(k <= run["k_threshold"]))
        )


def test_shared_test_rows_give_each_runs_evaluate_lpd(comparison, short_advi_run, short_nuts_run):
    test = comparison.to_dict()["test"]
    assert comparison.test_note is None and test["n"] == 24
    by_run = {run["run"]: run for run in test["runs"]}
    for path in (short_advi_run, short_nuts_run):
        # metrics.json's test_lpd is evaluate() on the test rows, at fit time.
        lpd = load_metrics(path)["test_lpd"]
        assert by_run[path.name]["lpd"] == pytest.approx(lpd, rel=1e-9)
        assert by_run[path.name]["elpd"] == pytest.approx(24 * lpd, rel=1e-9)
    best, other = test["runs"]
    assert best["run"] == test["reference"] and best["elpd_diff"] == best["dse"] == 0
    pointwise = comparison.test.pointwise
    diff = pointwise[other["run"]] - pointwise[best["run"]]
    assert other["elpd_diff"] == pytest.approx(diff.sum()) and other["elpd_diff"] <= 0
    assert other["dse"] == pytest.approx(np.sqrt(24) * diff.std())


def test_runs_without_shared_test_rows_or_log_likelihood(short_nuts_run):
    """In memory, from one NUTS run (its LOO needs no model): test rows or the pointwise
    log-likelihood taken away."""
    nuts = load_run(short_nuts_run)
    trace = nuts.trace.copy()
    del trace[TEST_DATA]
    result = compare_fitted({"nuts": nuts, "no-test": nuts.with_trace(trace)})
    assert result.test is None
    assert result.test_note == "test LPD not compared: run no-test holds no test rows"
    assert result.table["elpd_diff"].abs().max() == 0  # the same draws
    trace = nuts.trace.copy()
    del trace[LOG_LIKELIHOOD]
    with pytest.raises(PmbnnError, match="run no-loo holds no pointwise log-likelihood"):
        compare_fitted({"nuts": nuts, "no-loo": nuts.with_trace(trace)})


def test_text_json_and_page_from_the_command_line(short_advi_run, short_nuts_run, tmp_path, capsys):
    runs = (str(short_advi_run), str(short_nuts_run))
    out = tmp_path / "comparison"
    code, text, err = run_cli(capsys, "compare", *runs, "--out", str(out))
    assert code == 0, err
    assert text.startswith("pmbnn compare: 2 runs of y on the same 96 training rows")
    assert (
        "short-advi" in text
        and "short-nuts" in text
        and "test rows: 24, the same in every run" in text
    )
    assert "warning: run short-nuts:" in text  # 30 NUTS draws: Pareto k above 0.32 somewhere
    assert err.strip() == f"wrote {out / 'index.html'} and compare.json"
    assert {p.name for p in out.iterdir()} == {"index.html", "compare.json", "manifest.json"}
    page = (out / "index.html").read_text()
    assert 'id="comparison"' in page and 'id="test-comparison"' in page
    assert page.count("data:image/png;base64,") == 2
    code, json_text, _ = run_cli(capsys, "compare", *runs, "--json")
    assert code == 0
    assert strict_json(json_text) == strict_json((out / "compare.json").read_text())
    code, _, err = run_cli(capsys, "compare", *runs, "--out", str(out))
    assert_usage_error(code, err, "already exists", "--force")


@pytest.fixture(scope="module")
def other_rows_run(tmp_path_factory):
    """The built-in example drawn with another seed: other training rows. (The smallest ADVI
    fit: only its data matter here.)"""
    return fitted_run(
        tmp_path_factory, "other-rows", method="advi", iterations=100, draws=30, seed=1
    )


def test_runs_of_other_rows_are_refused(short_advi_run, other_rows_run, tmp_path, capsys):
    out = tmp_path / "comparison"
    code, text, err = run_cli(
        capsys, "compare", str(short_advi_run), str(other_rows_run), "--out", str(out)
    )
    assert_usage_error(
        code, err, "runs short-advi and other-rows cannot be compared", "different training rows"
    )
    assert text == "" and not out.exists()


@pytest.mark.parametrize(
    ("count", "fragment"), [(1, "needs at least two runs; got 1"), (2, "is given twice")]
)
def test_one_run_is_not_a_comparison(short_advi_run, count, fragment, capsys):
    code, _, err = run_cli(capsys, "compare", *[str(short_advi_run)] * count)
    assert_usage_error(code, err, fragment)
