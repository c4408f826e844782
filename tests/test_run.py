"""Runs on disk: round trip, plain-xarray readability, determinism, no overwrite."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import xarray as xr

from pmbnn.pipeline import fit
from pmbnn.run import load_run


def test_reloaded_run_predicts_identically(small_advi_run):
    from pmbnn.fitted import FittedBnn

    first = load_run(small_advi_run)
    x = np.linspace(-6, 6, 25)[:, None]
    reloaded = FittedBnn(
        first.spec, first.trace.copy(deep=True), first.scaler, first.feature_names, first.target
    )
    a, b = first.predict(x), load_run(small_advi_run).predict(x)
    for column in ("mean", "sd_total", "sd_epistemic", "sd_aleatoric", "q05", "q95"):
        np.testing.assert_array_equal(a.to_frame()[column], b.to_frame()[column])
    np.testing.assert_array_equal(a.mean, reloaded.predict(x).mean)


def test_run_reproduces_its_own_metrics(small_advi_run):
    """The metrics written at fit time are recomputed from the saved run alone."""
    fitted = load_run(small_advi_run)
    metrics = json.loads((small_advi_run / "metrics.json").read_text())
    refit_data = fitted.spec  # same spec, same seed -> same data and split
    from pmbnn.data import load_dataset, split_indices

    data = load_dataset(refit_data.data, refit_data.inference.seed)
    _, test = split_indices(len(data.y), refit_data.data.test_fraction, refit_data.inference.seed)
    prediction = fitted.predict(data.x[test])
    rmse = float(np.sqrt(np.mean((prediction.mean - data.y[test]) ** 2)))
    assert rmse == metrics["test_rmse"]


def test_trace_opens_with_plain_xarray(small_advi_run):
    code = (
        "import sys, xarray as xr\n"
        f"tree = xr.open_datatree({str(small_advi_run / 'trace.nc')!r}, engine='h5netcdf')\n"
        "assert {'posterior', 'observed_data', 'constant_data', 'vi_loss'} <= set(tree.children)\n"
        "assert tree['posterior'].sizes['chain'] == 1\n"
        "assert 'pmbnn' not in sys.modules\n"
        "print(tree['posterior']['sigma'].size)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "200"


def test_run_files_are_data(small_advi_run):
    assert sorted(p.name for p in small_advi_run.iterdir()) == [
        "manifest.json",
        "meta.json",
        "metrics.json",
        "spec.toml",
        "trace.nc",
    ]
    meta = json.loads((small_advi_run / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["method"] == "advi"
    assert len(meta["data"]["fingerprint_sha256"]) == 64
    assert {"pymc", "pytensor", "numpy"} <= set(meta["versions"])
    assert meta["timings_s"]["inference_s"] > 0
    loss = xr.open_datatree(small_advi_run / "trace.nc", engine="h5netcdf")["vi_loss"]
    assert loss["loss"].size > 0 and np.all(np.isfinite(loss["loss"].values))


def test_same_seed_same_numbers(blr_spec):
    spec = blr_spec.with_overrides(inference={"method": "advi", "iterations": 1000, "draws": 100})
    first, _ = fit(spec)
    second, _ = fit(spec)
    other, _ = fit(spec.with_overrides(inference={"seed": 1}))
    a, b, c = (r.posterior["w_out"].values for r in (first, second, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
