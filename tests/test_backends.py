"""The PyTensor backend ADVI compiles to: numba or JAX reach the same optimum, reproducibly."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pmbnn.errors import PmbnnError
from pmbnn.inference.compile_target import compile_target
from pmbnn.pipeline import fit
from tests.helpers import assert_usage_error, exact_posterior, require_extra, run_cli


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_mean_field_advi_reaches_the_exact_optimum(blr_csv, blr_spec, backend):
    """On Bayesian linear regression the mean-field optimum is known: the posterior mean and
    sds 1 / sqrt(diagonal of the posterior precision)."""
    if backend == "jax":
        require_extra("jax")
    spec = blr_spec.with_overrides(
        inference={"method": "advi", "iterations": 30_000, "draws": 10, "backend": backend}
    )
    fitted, _ = fit(spec)
    q = fitted.trace["vi_approximation"]
    assert fitted.trace["vi_loss"].attrs["backend"] == backend
    mean, cov = exact_posterior(blr_csv, blr_spec)
    sd = np.sqrt(np.diag(cov))
    mean_field_sd = 1 / np.sqrt(np.diag(np.linalg.inv(cov)))
    # Measured (both backends): means within 0.03 posterior sd, sds within 2%; the slack
    # allows for the optimizer noise left after the learning-rate cuts.
    np.testing.assert_array_less(np.abs(q["mean"].values - mean) / sd, 0.1)
    np.testing.assert_allclose(q["sd"].values / mean_field_sd, 1.0, atol=0.05)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_advi_same_seed_same_numbers(blr_spec, backend):
    if backend == "jax":
        require_extra("jax")
    spec = blr_spec.with_overrides(
        inference={"method": "advi", "iterations": 500, "draws": 10, "backend": backend}
    )
    first, second = fit(spec)[0], fit(spec)[0]
    np.testing.assert_array_equal(
        first.trace["vi_loss"]["loss"].values, second.trace["vi_loss"]["loss"].values
    )
    other, _ = fit(spec.with_overrides(inference={"seed": 1}))
    assert not np.array_equal(
        first.trace["vi_loss"]["loss"].values, other.trace["vi_loss"]["loss"].values
    )


def test_auto_backend_prefers_jax_and_falls_back_to_numba(monkeypatch):
    require_extra("jax")
    assert compile_target("auto") == "jax"  # the test environment has the jax extra
    assert compile_target("numba") == "numba"
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    assert compile_target("auto") == "numba"
    with pytest.raises(PmbnnError, match=r"backend = 'jax' needs jax.*pip install 'pmbnn\[jax\]'"):
        compile_target("jax")


def test_cli_refuses_jax_backend_without_jax(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "--method", "advi", "--backend", "jax", "--out", str(out))
    assert_usage_error(code, err, "backend = 'jax' needs jax", "pmbnn[jax]")
    assert not out.exists()


def test_jax_advi_leaves_the_model_data_as_numpy(blr_spec):
    """The JAX step reads the data as device arrays during the fit (no per-call copy); the
    model's shared variables must hold their numpy arrays again afterwards, for numba-compiled
    log densities and for swapping in the next split's data."""
    require_extra("jax")
    spec = blr_spec.with_overrides(
        inference={"method": "advi", "iterations": 200, "draws": 10, "backend": "jax"}
    )
    fitted, _ = fit(spec)
    assert fitted.trace["vi_loss"].attrs["backend"] == "jax"
    for shared in (fitted.model.inputs, fitted.model.model["y_data"]):
        assert type(shared.get_value()) is np.ndarray
