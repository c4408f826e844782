"""The benchmark compares like with like: its NumPyro reference is pmbnn's model, exactly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pmbnn.model import build_model
from pmbnn.spec import Spec
from tests.helpers import ROOT, require_extra

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.parametrize("workload", ["small", "perf"])
def test_reference_density_equals_pmbnn_density(workload):
    """Same log posterior (to rounding) at random points of the unconstrained space, for a
    small network and for the perf workload's own spec (whatever pmbnn's default prior is)."""
    require_extra("numpyro")
    import jax
    import perf
    import reference

    jax.config.update("jax_enable_x64", True)
    from numpyro.infer.util import potential_energy

    if workload == "perf":
        spec = perf.workload_spec(perf.QUICK)
        features = perf.N_FEATURES
    else:
        spec = Spec().with_overrides(
            network={"hidden": [3, 2]}, prior={"weight_scale": 1.5, "bias_scale": 0.7}
        )
        features = 4
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, features)), rng.normal(size=20)
    model = build_model(spec, x, y, [f"x{i}" for i in range(features)], target_scale=1.0).model
    logp = model.compile_logp(jacobian=True)
    for seed in range(3):
        point = model.initial_point(random_seed=seed)
        point["sigma_log__"] = np.asarray(rng.normal())
        params = {name.removesuffix("_log__"): value for name, value in point.items()}
        potential = potential_energy(reference.bnn_model, (spec, x, y), {}, params)
        np.testing.assert_allclose(-float(potential), float(logp(point)), rtol=1e-10)


def test_perf_script_rejects_an_unknown_sampler():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "perf.py"), "--samplers", "stan"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown sampler(s) stan" in result.stderr


def test_gpu_section_runs_with_the_cpu_alone():
    """perf.py's GPU section, kept working where there is no GPU: the same gradient timing on
    the CPU for a small workload, auto's pick, and the ratios and targets it feeds."""
    require_extra("jax")
    import perf

    row = perf.measure_devices(perf.QUICK, 200, devices=("cpu",))
    assert row["rows"] == 200 and row["auto"] == "cpu" and 0 < row["cpu_gradient_ms"] < 1e3
    named = perf.device_ratios([row | {"gpu_gradient_ms": 2 * row["cpu_gradient_ms"]}])
    assert named == {
        "gradient_time_ratio_gpu_vs_cpu_200_rows": 2.0,
        "device_auto_time_ratio_vs_best_200_rows": 1.0,
    }
    judged = perf.verdicts(named | {name: 1.0 for name in perf.TARGETS})
    assert judged["device_auto_time_ratio_vs_best_200_rows"]["met"]


def test_nuts_ratios_judge_the_default_sampler_in_speed_and_memory():
    """The default's ESS/s against the best backend's, and its peak memory against PyMC's
    sampler counted with its largest chain process (PyMC samples chains in child processes)."""
    require_extra("jax", "blackjax")
    import perf

    nuts = {
        "numpyro_reference": {"ess_per_s": 2.0},
        "pymc": {"ess_per_s": 0.5, "peak_rss_mb": 500.0, "peak_rss_children_mb": 300.0},
        "numpyro": {"ess_per_s": 2.5, "peak_rss_mb": 6000.0, "peak_rss_children_mb": 0.0},
        "blackjax": {"ess_per_s": 2.0, "peak_rss_mb": 1000.0, "peak_rss_children_mb": 0.0},
    }
    named = perf.nuts_ratios(nuts)
    assert named["nuts_best_backend"] == "numpyro" and named["nuts_default_backend"] == "blackjax"
    assert named["nuts_default_ess_per_s_ratio_vs_best"] == 0.8
    assert named["nuts_default_peak_memory_ratio_vs_pymc"] == 1.25
    judged = perf.verdicts(named)
    assert not judged["nuts_default_ess_per_s_ratio_vs_best"]["met"]
    assert judged["nuts_default_peak_memory_ratio_vs_pymc"]["met"]
