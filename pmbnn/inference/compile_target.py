"""What PyTensor compiles the model to for ADVI, nutpie and prediction: numba or JAX.

PyTensor compiles with numba by default; with the jax extra installed it can compile to JAX
instead, which "auto" prefers. Measured on the perf workload (benchmarks/perf.py, 2 cores):
one log-posterior gradient 0.94 ms through numba, 0.33 ms through JAX; mean-field ADVI
810 iterations/s through numba, 1080-1340 through JAX; nutpie 460 gradients/s against 3851;
the prediction forward pass 6x faster. (Which NUTS implementation runs is the sampler, a
separate choice: `samplers.py`.)
"""

from __future__ import annotations

import importlib.util
import os

from pmbnn.cores import usable_cores
from pmbnn.errors import MissingExtraError

JAX_EXTRA = "pip install 'pmbnn[jax]'"


def use_all_cpu_cores_for_jax() -> None:
    """Let JAX run one chain per CPU core (it shows one CPU device unless told otherwise).

    Only effective before JAX is first imported; an XLA_FLAGS the user set is left alone.
    """
    if "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={usable_cores()}"


def compile_target(choice: str) -> str:
    """The PyTensor compile target ("numba" or "jax") for ``[inference].backend = choice``.

    "auto" is JAX when it is installed, else numba; "jax" without JAX is an error naming the
    extra. The choice is recorded with each run, since the two give different random streams.
    """
    has_jax = importlib.util.find_spec("jax") is not None
    if choice == "jax" and not has_jax:
        raise MissingExtraError(
            f"[inference].backend = 'jax' needs jax, which is not installed: run {JAX_EXTRA} "
            "(or set backend = 'numba')"
        )
    if choice == "auto":
        return "jax" if has_jax else "numba"
    return choice
