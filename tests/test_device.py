"""Where a fit's JAX-compiled work runs: the choice, its record, and a GPU asked for in vain.

These machines have no GPU: the GPU branch of `auto` is the rule below plus the same timing
code run on the CPU; its figures wait for a machine with one (docs/samplers.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pmbnn.errors import PmbnnError
from pmbnn.inference.device import (
    DeviceChoice,
    faster_device,
    gradient_seconds,
    jax_sees_a_gpu,
    on_device,
)
from pmbnn.run import load_run
from pmbnn.spec import Spec
from tests.helpers import assert_usage_error, require_extra, run_cli

pytestmark = pytest.mark.skipif(jax_sees_a_gpu(), reason="written for a machine with no GPU")


def _settings(**inference: object):
    return Spec().with_overrides(inference=inference).inference


def test_auto_is_the_cpu_where_jax_sees_no_gpu():
    require_extra("numpyro")
    assert Spec().inference.device == "auto"
    numpyro = _settings(sampler="numpyro")
    assert DeviceChoice.for_setting(numpyro) == DeviceChoice("cpu", "auto: JAX sees no GPU")
    cpu = _settings(sampler="numpyro", device="cpu")
    assert DeviceChoice.for_setting(cpu) == DeviceChoice("cpu", "as set")


def test_a_fit_without_jax_work_neither_imports_jax_nor_takes_a_gpu():
    """PyMC's chains start by fork only while JAX is not loaded (samplers.py): choosing the
    device for a PyMC-sampler fit must not load it."""
    code = (
        "import sys\n"
        "from pmbnn.inference.device import DeviceChoice\n"
        "from pmbnn.spec import Spec\n"
        "settings = Spec().with_overrides(inference={'sampler': 'pymc'}).inference\n"
        "choice = DeviceChoice.for_setting(settings)\n"
        "assert choice.reason == 'auto: nothing runs on JAX', choice\n"
        "assert 'jax' not in sys.modules\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    with pytest.raises(PmbnnError, match="compiles nothing to JAX"):
        DeviceChoice.for_setting(_settings(sampler="pymc", device="gpu"))


def test_looking_for_a_gpu_leaves_one_jax_device_per_core():
    """Asking JAX for its devices starts its backends; done before the CPU's device count is
    set, NumPyro's parallel chains would share one device (the built-in example took 88 s
    instead of 26 s)."""
    require_extra("jax")
    code = (
        "import os\n"
        "from pmbnn.inference.device import jax_sees_a_gpu\n"
        "jax_sees_a_gpu()\n"
        "import jax\n"
        "assert jax.local_device_count() == os.cpu_count(), jax.local_device_count()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()[-500:]


def test_the_faster_gradient_decides_and_a_tie_stays_on_the_cpu():
    assert faster_device({"cpu": 0.69e-3, "gpu": 0.18e-3}) == "gpu"  # H100, 1e3 rows (issue 15)
    assert faster_device({"cpu": 0.02e-3, "gpu": 0.10e-3}) == "cpu"
    assert faster_device({"cpu": 1e-4, "gpu": 1e-4}) == "cpu"


def test_gradient_is_timed_as_the_samplers_compile_it(blr_spec):
    """The timing that decides on a GPU machine runs here on the CPU: a positive, sub-second
    figure for a tiny model, and JAX work placed on the named device."""
    require_extra("jax")
    import jax
    import numpy as np

    from pmbnn.model import build_model

    x = np.zeros((4, 2))
    bnn = build_model(blr_spec, x, x[:, 0], ["a", "b"], target_scale=1.0)
    assert 0 < gradient_seconds(bnn, "cpu") < 1
    with on_device("cpu"):
        assert jax.numpy.ones(3).devices() == {jax.devices("cpu")[0]}


def test_gpu_without_one_is_refused_before_any_work(tmp_path, capsys):
    require_extra("numpyro")
    with pytest.raises(PmbnnError, match="JAX sees no GPU here"):
        DeviceChoice.for_setting(_settings(sampler="numpyro", device="gpu"))
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "--device", "gpu", "--out", str(out))
    assert_usage_error(code, err, "[inference].device = 'gpu'", "jax[cuda12]")
    assert not out.exists()


def test_a_run_names_the_device_that_ran_and_why(sine_run):
    fitted = load_run(sine_run)
    assert fitted.spec.inference.device == "cpu"
    assert fitted.meta["device"] == {"name": "cpu", "chosen": "auto: JAX sees no GPU"}
