"""Where a fit's JAX-compiled work runs (NumPyro, BlackJAX, nutpie and ADVI through JAX): CPU or
GPU, and for ``[inference].device = "auto"`` whichever computes this model's gradient faster.

Why not always the GPU: measured on an H100 (issue 15), one log-posterior gradient of the perf
network took 0.18 ms there against 0.69 ms on XLA's CPU at 1e3 rows and 0.51 ms against 26 ms
at 1e5 rows, but the 96-row built-in example sampled several times slower on the GPU than on 2
CPU cores: a small model's gradient is too little work to pay for a kernel launch per step.
One timed gradient on each device decides, for the model and data at hand. PyMC's own sampler
and numba-compiled work always run on the CPU.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from pmbnn.errors import PmbnnError
from pmbnn.inference.compile_target import compile_target, use_all_cpu_cores_for_jax
from pmbnn.model import BnnModel
from pmbnn.spec import InferenceSpec

TIMED_CALLS = 5  # after one warm-up call each: a median of five is steady to ~10% here
GPU_INSTALL = "pip install -U 'jax[cuda12]' into the venv"


@dataclass(frozen=True)
class DeviceChoice:
    """The device a fit runs on and why: what a run records and `pmbnn fit` prints."""

    name: str  # "cpu" or "gpu"
    reason: str
    runs_jax: bool = True  # False: nothing to place, and JAX is not even imported

    @classmethod
    def for_setting(cls, settings: InferenceSpec, bnn: BnnModel | None = None) -> DeviceChoice:
        """`settings.device` checked ("gpu" needs one JAX sees and a fit that runs JAX), or for
        "auto" the faster for `bnn`. A fit without JAX work never imports JAX for this: PyMC's
        chains start by fork only while JAX is not loaded."""
        setting = settings.device
        if not runs_jax(settings):
            if setting == "gpu":
                raise PmbnnError(
                    "[inference].device = 'gpu', but this fit compiles nothing to JAX (PyMC's "
                    "sampler and numba run on the CPU): choose sampler numpyro, blackjax or "
                    "auto, or set device = 'auto' or 'cpu'"
                )
            reason = "as set" if setting == "cpu" else "auto: nothing runs on JAX"
            return cls("cpu", reason, runs_jax=False)
        has_gpu = jax_sees_a_gpu()
        if setting == "gpu" and not has_gpu:
            raise PmbnnError(
                f"[inference].device = 'gpu', but JAX sees no GPU here: {GPU_INSTALL} on a "
                "machine with one, or set device = 'auto' or 'cpu'"
            )
        if setting != "auto":
            return cls(setting, "as set")
        if not has_gpu or bnn is None:
            return cls("cpu", "auto: JAX sees no GPU")
        seconds = {name: gradient_seconds(bnn, name) for name in ("cpu", "gpu")}
        name = faster_device(seconds)
        return cls(
            name,
            f"auto: one gradient {1e3 * seconds['gpu']:.3g} ms on the GPU, "
            f"{1e3 * seconds['cpu']:.3g} ms on the CPU",
        )


def runs_jax(settings: InferenceSpec) -> bool:
    """Whether the fit these settings describe (sampler already chosen) compiles to JAX."""
    jax_target = compile_target(settings.backend) == "jax"
    if settings.method != "nuts":
        return jax_target
    return settings.sampler in ("numpyro", "blackjax", "auto") or (
        settings.sampler == "nutpie" and jax_target
    )


def faster_device(seconds: dict[str, float]) -> str:
    """The device with the shorter gradient time; the CPU on a tie (no transfer to pay)."""
    return "gpu" if seconds["gpu"] < seconds["cpu"] else "cpu"


def jax_sees_a_gpu() -> bool:
    if importlib.util.find_spec("jax") is None:
        return False
    # Asking for devices starts JAX's backends: the CPU's device count must be set first, or
    # NumPyro's chains share one device (measured: the built-in example 88 s instead of 26 s).
    use_all_cpu_cores_for_jax()
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:  # no GPU backend
        return False


@contextmanager
def on_device(choice: DeviceChoice | str) -> Iterator[None]:
    """JAX computations in the block run on the chosen device ("cpu" or "gpu") unless their
    inputs are already placed elsewhere. Only where there is a choice, a GPU beside the CPU:
    on a CPU-only machine a default device would pin work to the first of the per-core devices
    that NumPyro's parallel chains are spread over. For a fit without
    JAX work nothing happens (importing JAX would make PyMC start its chains from a forkserver
    instead of by fork)."""
    choice = choice if isinstance(choice, DeviceChoice) else DeviceChoice(choice, "as set")
    if not choice.runs_jax or not jax_sees_a_gpu():
        with nullcontext():
            yield
        return
    import jax

    with jax.default_device(jax.devices(choice.name)[0]):
        yield


def gradient_seconds(bnn: BnnModel, device: str) -> float:
    """Median wall time of one log-posterior value and gradient on `device`, compiled to JAX."""
    gradient = _jax_gradient(bnn)
    point = bnn.model.initial_point(random_seed=0)
    with on_device(device):
        gradient(point)  # compiles for this device
        times = []
        for _ in range(TIMED_CALLS):
            clock = time.perf_counter()
            gradient(point)
            times.append(time.perf_counter() - clock)
    return statistics.median(times)


def _jax_gradient(bnn: BnnModel) -> Callable[[dict], object]:
    """The log density and its gradient as the JAX samplers compile it (PyMC's jaxified graph,
    the data inside the program as constants): no per-call copy of the data is timed."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    names = [v.name for v in bnn.model.value_vars]
    value_and_grad = jax.jit(jax.value_and_grad(get_jaxified_logp(bnn.model)))

    def call(point: dict) -> object:
        return jax.block_until_ready(value_and_grad([jax.numpy.asarray(point[n]) for n in names]))

    return call
