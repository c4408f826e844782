"""pmbnn's speed and memory against NumPyro, side by side, on one canonical workload.

    python benchmarks/perf.py            # full: NUTS 2 x (300 + 300), 3 seeds; 63 min here
    python benchmarks/perf.py --quick    # the same measurements, smaller: 6 min on 2 cores

Workload: N = 1000 rows, D = 8 standardized features, 2 hidden layers of 32 tanh units, the
fan-in Normal priors and learned-noise Gaussian likelihood of pmbnn's defaults, generated from
a seed. The reference is the same model written directly in NumPyro (benchmarks/reference.py).
Every measurement runs in its own process, so its peak memory (max RSS) is its own; timings
are medians of repeats (NUTS: runs with 3 seeds in the full run, one in --quick). Prints a
table and writes reports/benchmarks/perf.json with every figure and ratio. Where JAX sees a GPU
it adds the GPU section: one gradient on the GPU and on the CPU at 1e3..1e6 rows and the device
`[inference].device = "auto"` picks at each (`devices` in perf.json; ratios
gradient_time_ratio_gpu_vs_cpu_* and device_auto_time_ratio_vs_best_*, the latter <= 1.2).
NUTS, ADVI and prediction per device wait for a machine with a GPU to be measured on.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # pmbnn from the checkout, as the README installs it
sys.path.insert(0, str(Path(__file__).resolve().parent))

N_ROWS, N_FEATURES, HIDDEN, N_TEST, N_PROBES = 1000, 8, [32, 32], 1000, 10
NOISE_SD = 0.3
SAMPLERS = ["pymc", "nutpie", "numpyro", "blackjax"]
FULL = {
    "nuts_tune": 300,
    "nuts_draws": 300,
    "nuts_seeds": [0, 1, 2],  # NUTS figures are medians over these runs
    "advi_iterations": 20_000,
    "minibatch_rows": [1_000, 10_000, 100_000, 1_000_000],
    "minibatch_iterations": 2_000,
    "predict_inputs": [1_000, 10_000, 100_000],
    "device_rows": [1_000, 10_000, 100_000, 1_000_000],
    "repeats": 5,
}
QUICK = FULL | {
    "nuts_tune": 100,
    "nuts_draws": 100,
    "nuts_seeds": [0],
    "advi_iterations": 3_000,
    "minibatch_rows": [1_000, 1_000_000],
    "minibatch_iterations": 2_000,
    "predict_inputs": [1_000, 10_000],
    "repeats": 3,
}
BATCH_SIZE = 100
PREDICT_DRAWS = 1000


# --- the workload --------------------------------------------------------------------------


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal features; a smooth nonlinear target (one function, whatever the seed
    and row count, so that test data from another seed is from the same distribution) plus
    Gaussian noise of sd NOISE_SD."""
    rng = np.random.default_rng([seed, rows])
    directions = np.random.default_rng(0).normal(size=(N_FEATURES, 3)) / np.sqrt(N_FEATURES)
    x = rng.normal(size=(rows, N_FEATURES))
    z = x @ directions
    f = np.sin(2 * z[:, 0]) + 0.5 * z[:, 1] * z[:, 2] + np.tanh(z[:, 2])
    return x, f + NOISE_SD * rng.normal(size=rows)


def workload_spec(settings: dict, method: str = "nuts", sampler: str = "pymc", seed: int = 0):
    from pmbnn.spec import Spec

    # The fixed prior: the model the NumPyro reference (reference.py) writes out, and the one
    # every earlier perf.json measured (pmbnn's default learns its scales since issue 14).
    return Spec().with_overrides(
        network={"hidden": HIDDEN, "activation": "tanh"},
        prior={"kind": "fixed", "weight_scale": 1.0},
        inference={
            "method": method,
            "sampler": sampler,
            "tune": settings["nuts_tune"],
            "draws": settings["nuts_draws"] if method == "nuts" else 1000,
            "chains": 2,
            "iterations": settings["advi_iterations"],
            "seed": seed,
        },
    )


def build(spec, rows: int = N_ROWS, batch_size: int | None = None):
    from pmbnn.model import build_model

    x, y = make_data(rows)
    return build_model(
        spec, x, y, [f"x{i}" for i in range(N_FEATURES)], batch_size, target_scale=1.0
    )


def test_data() -> tuple[np.ndarray, np.ndarray]:
    return make_data(N_TEST, seed=1)


# --- measurements (each runs in a fresh process) -------------------------------------------


def _median_seconds(call, repeats: int, inner: int = 1) -> float:
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        for _ in range(inner):
            call()
        times.append((time.perf_counter() - clock) / inner)
    return statistics.median(times)


def measure_machine(settings: dict) -> dict:
    """Best float64 matmul rate of this machine (numpy's BLAS, all cores): the peak."""
    a = np.random.default_rng(0).normal(size=(2000, 2000))
    seconds = min(_median_seconds(lambda: a @ a, 1) for _ in range(5))
    return {"matmul_peak_gflops": 2 * 2000**3 / seconds / 1e9}


def measure_gradient(settings: dict) -> dict:
    """One log-posterior value and gradient: PyMC's compiled function (what PyMC's NUTS
    calls), the same density through JAX, and the NumPyro reference, all jitted, float64."""
    import jax
    import jax.numpy as jnp
    import reference
    from pymc.sampling.jax import get_jaxified_logp

    spec = workload_spec(settings)
    bnn = build(spec)
    model = bnn.model
    point = model.initial_point(random_seed=0)
    flat = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    compiled = model.logp_dlogp_function(ravel_inputs=True)
    compiled(flat)
    logp = get_jaxified_logp(model)
    pmbnn_jax = jax.jit(jax.value_and_grad(lambda values: logp(values)))
    values = [jnp.asarray(point[v.name]) for v in model.value_vars]
    x, y = make_data(N_ROWS)
    ref_grad, ref_point = reference.potential_and_grad(spec, x, y)
    for fn, arg in ((pmbnn_jax, values), (ref_grad, ref_point)):
        jax.block_until_ready(fn(arg))
    repeats, inner = settings["repeats"], 200
    n_weights = flat.size
    return {
        "n_weights": n_weights,
        "flops_per_gradient": 6 * N_ROWS * n_weights,
        "pmbnn_compiled_us": 1e6 * _median_seconds(lambda: compiled(flat), repeats, inner),
        "pmbnn_jax_us": 1e6
        * _median_seconds(lambda: jax.block_until_ready(pmbnn_jax(values)), repeats, inner),
        "numpyro_us": 1e6
        * _median_seconds(lambda: jax.block_until_ready(ref_grad(ref_point)), repeats, inner),
    }


def _nuts_figures(posterior, steps: np.ndarray, seconds: float, bnn, settings: dict) -> dict:
    """Min bulk ESS over sigma and f at the probe inputs, ESS/s, gradient evaluations/s."""
    import xarray as xr
    from arviz_stats import ess

    from pmbnn.predict import NetworkFunction

    probes = test_data()[0][:N_PROBES]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    f = NetworkFunction(bnn)(posterior, probes).reshape(n_chain, n_draw, -1)
    f = xr.DataArray(f, dims=("chain", "draw", "probe"))
    sigma = posterior["sigma"].transpose("chain", "draw")
    ess_f = ess(f, method="bulk").values
    ess_sigma = float(ess(sigma, method="bulk"))
    min_ess = float(min(ess_sigma, ess_f.min()))
    per_draw = float(np.mean(steps))
    # Tuning draws' trees are not kept by every backend; count them at the kept draws' size.
    gradients = per_draw * n_chain * (settings["nuts_tune"] + settings["nuts_draws"])
    return {
        "seconds": seconds,
        "min_bulk_ess": min_ess,
        "ess_sigma": ess_sigma,
        "ess_f_min": float(ess_f.min()),
        "ess_per_s": min_ess / seconds,
        "leapfrog_steps_per_draw": per_draw,
        "gradients_per_s": gradients / seconds,
        "sigma_mean": float(posterior["sigma"].mean()),
    }


def measure_nuts(settings: dict, sampler: str, seed: int = 0) -> dict:
    """pmbnn's NUTS with one backend, exactly as `pmbnn fit` runs it (2 chains)."""
    from pmbnn.inference import CompiledInference

    spec = workload_spec(settings, "nuts", sampler, seed)
    bnn = build(spec)
    clock = time.perf_counter()
    trace = CompiledInference(bnn).run(spec.inference, progress=False)
    seconds = time.perf_counter() - clock
    stats = trace["sample_stats"]
    figures = _nuts_figures(
        trace["posterior"].to_dataset(), stats["n_steps"].values, seconds, bnn, settings
    )
    return figures | {"divergences": int(stats["diverging"].sum())}


def measure_nuts_reference(settings: dict, seed: int = 0) -> dict:
    """The NumPyro reference: its NUTS on its own model, chains in parallel like pmbnn's."""
    import jax
    import reference

    spec = workload_spec(settings, "nuts", "numpyro", seed)
    x, y = make_data(N_ROWS)
    chain_method = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    posterior, steps, seconds = reference.sample_nuts(spec, x, y, chain_method)
    return _nuts_figures(posterior, steps, seconds, build(spec), settings)


def _predictive(bnn, posterior, x: np.ndarray):
    """The family's predictive draws of the network at x (the workload is on the model's
    scale: no target standardization to undo)."""
    from pmbnn.families.base import NetworkOutputs
    from pmbnn.predict import NetworkFunction

    return bnn.family.draws(NetworkOutputs(NetworkFunction(bnn)(posterior, x), posterior))


def _test_lpd(bnn, posterior) -> float:
    from pmbnn.families.base import lpd

    x, y = test_data()
    return float(lpd(_predictive(bnn, posterior, x).log_density(y)).mean())


def measure_advi(settings: dict, backend: str = "auto") -> dict:
    """pmbnn's mean-field ADVI as `pmbnn fit --method advi` runs it (plateau stop), compiled
    by the given PyTensor backend ("auto": JAX, as installed here). Iterations per second
    count the optimization alone, as for the SVI reference (median of `repeats` fits from the
    same start); `seconds`, of the first fit, adds the 1000 draws from q and the trace."""
    from pmbnn.inference.advi import AdviProgram, fit_advi

    spec = workload_spec(settings, "advi").with_overrides(inference={"backend": backend})
    bnn = build(spec)
    clock = time.perf_counter()
    program = AdviProgram(bnn, spec.inference, full_rank=False)
    compile_seconds = time.perf_counter() - clock
    optimize = program.run
    optimization_seconds = []

    def timed_run(*args, **kwargs):
        clock = time.perf_counter()
        result = optimize(*args, **kwargs)
        optimization_seconds.append(time.perf_counter() - clock)
        return result

    program.run = timed_run
    clock = time.perf_counter()
    trace = fit_advi(bnn, spec.inference, False, False, program)  # + 1000 draws from q
    seconds = time.perf_counter() - clock
    for _ in range(settings["repeats"] - 1):  # the same fit again, for the median
        program.run(spec.inference, progress=False)
    iterations = trace["vi_loss"].sizes["iteration"]
    optimization = statistics.median(optimization_seconds)
    return {
        "backend": program.backend,
        "iterations": iterations,
        "seconds": seconds,
        "optimization_seconds": optimization,
        "compile_seconds": compile_seconds,
        "it_per_s": iterations / optimization,
        "test_lpd": _test_lpd(bnn, trace["posterior"].to_dataset()),
    }


def measure_svi_reference(settings: dict, iterations: int) -> dict:
    """NumPyro SVI, AutoNormal guide, for as many iterations as pmbnn's ADVI took (median of
    `repeats` timed runs)."""
    import reference

    spec = workload_spec(settings, "advi")
    x, y = make_data(N_ROWS)
    posterior, seconds, compile_seconds = reference.fit_svi(
        spec, x, y, iterations, 1000, repeats=settings["repeats"]
    )
    return {
        "iterations": iterations,
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "it_per_s": iterations / seconds,
        "test_lpd": _test_lpd(build(spec), posterior),
    }


def measure_minibatch(settings: dict, rows: int) -> dict:
    """Minibatch ADVI (batches of BATCH_SIZE rows) on `rows` rows: seconds per iteration.

    Each run first copies the full data into the minibatch model once (64 MB at 1e6 rows);
    the per-iteration figure is the marginal cost, from runs of n and 2n iterations.
    """
    from pmbnn.inference.advi import AdviProgram

    spec = workload_spec(settings, "advi").with_overrides(
        inference={"batch_size": BATCH_SIZE, "iterations": settings["minibatch_iterations"]}
    )
    bnn = build(spec, rows)
    program = AdviProgram(bnn, spec.inference, full_rank=False)
    runs = []
    n = spec.inference.iterations
    for iterations in (n, n, 2 * n):  # the first warms up (first calls are slower)
        settings_n = spec.inference.model_copy(update={"iterations": iterations})
        clock = time.perf_counter()
        _, losses = program.run(settings_n, progress=False)
        runs.append((len(losses), time.perf_counter() - clock))
    (n1, t1), (n2, t2) = runs[1:]
    per_iteration = (t2 - t1) / (n2 - n1)
    return {
        "rows": rows,
        "iterations": n2,
        "ms_per_iteration": 1e3 * per_iteration,
        "setup_seconds": t1 - n1 * per_iteration,
    }


def measure_predict(settings: dict, inputs: int) -> dict:
    """Predictive summaries (mean, sds, 90% interval) for 1000 draws over `inputs` inputs."""
    import xarray as xr

    from pmbnn.families.base import NetworkOutputs
    from pmbnn.predict import DEFAULT_LEVELS, NetworkFunction

    spec = workload_spec(settings, "advi")
    bnn = build(spec)
    network = NetworkFunction(bnn)
    # Timing does not depend on the weights' values: random ones of the right shapes.
    rng = np.random.default_rng(0)
    dims = bnn.model.named_vars_to_dims
    weights = {
        name: (("chain", "draw", *dims[name]), 0.2 * rng.normal(size=(1, PREDICT_DRAWS, *shape)))
        for name, shape in ((n, np.shape(bnn.model[n].eval())) for n in bnn.weight_names)
    }
    posterior = xr.Dataset(
        weights | {"sigma": (("chain", "draw"), np.full((1, PREDICT_DRAWS), 0.3))}
    )
    x = make_data(inputs, seed=2)[0]
    network(posterior, x[:10])  # warm
    forward = _median_seconds(lambda: network(posterior, x), settings["repeats"])

    def predict() -> object:
        outputs = NetworkOutputs(network(posterior, x), posterior)
        return bnn.family.draws(outputs).summarize(DEFAULT_LEVELS)

    # Once: at 1e5 inputs one call takes minutes (the interval bounds dominate).
    whole = _median_seconds(predict, 1)
    return {"inputs": inputs, "forward_seconds": forward, "predict_seconds": whole}


def measure_baseline(settings: dict) -> dict:
    """Memory of a process that has only imported pmbnn, PyMC and JAX: subtract it."""
    import jax  # noqa: F401
    import numpyro  # noqa: F401
    import pymc  # noqa: F401

    import pmbnn.inference  # noqa: F401

    return {}


def _child(name: str, args: tuple) -> dict:
    """Run one measurement in this (spawned) process; add its peak memory."""
    import logging
    import warnings

    import jax
    import pymc  # noqa: F401  (sets its logger's level on import: quiet it after)

    jax.config.update("jax_enable_x64", True)  # float64 everywhere, as PyMC's JAX samplers use
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.WARNING)
    figures = MEASUREMENTS[name](*args)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The largest of its own child processes (PyMC's sampler runs each chain in one).
    figures["peak_rss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return figures


def measure_devices(settings: dict, rows: int, devices: tuple[str, ...] = ("cpu", "gpu")) -> dict:
    """One log-posterior gradient of the workload with `rows` rows on each device, timed as
    `[inference].device = "auto"` times it, and the device auto picks (the GPU section: run
    only where JAX sees a GPU; tests run it with the CPU alone)."""
    from pmbnn.inference.device import DeviceChoice, gradient_seconds

    spec = workload_spec(settings, "nuts", "numpyro")
    bnn = build(spec, rows=rows)
    figures = {"rows": rows}
    for device in devices:
        figures[f"{device}_gradient_ms"] = 1e3 * gradient_seconds(bnn, device)
    figures["auto"] = DeviceChoice.for_setting(spec.inference, bnn).name
    return figures


MEASUREMENTS = {
    "machine": measure_machine,
    "devices": measure_devices,
    "gradient": measure_gradient,
    "nuts": measure_nuts,
    "nuts_reference": measure_nuts_reference,
    "advi": measure_advi,
    "svi_reference": measure_svi_reference,
    "minibatch": measure_minibatch,
    "predict": measure_predict,
    "baseline": measure_baseline,
}


# --- orchestration and report --------------------------------------------------------------


def _run_isolated(
    name: str, *args: object, verbose: bool = True, cache: Path | None = None
) -> dict:
    """One measurement in a fresh process (not a daemon: PyMC's sampler starts its own).

    With `cache`, a finished measurement is kept there and reused by ``--resume``.
    """
    label = " ".join([name, *(str(a) for a in args[1:])])
    cached = cache / f"{label.replace(' ', '-')}.json" if cache else None
    if cached is not None and cached.is_file():
        if verbose:
            print(f"  {label}: from {cached}", flush=True)
        return json.loads(cached.read_text())
    if verbose:
        print(f"  {label} ...", end="", flush=True)
    clock = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        figures = pool.submit(_child, name, args).result()
    if verbose:
        print(f" {time.perf_counter() - clock:.0f} s", flush=True)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(figures))
    return figures


def measure_all(settings: dict, samplers: list[str], verbose: bool, cache: Path | None) -> dict:
    def run_isolated(name: str, *args: object) -> dict:
        return _run_isolated(name, *args, verbose=verbose, cache=cache)

    results: dict = {"baseline": run_isolated("baseline", settings)}
    results["machine"] = run_isolated("machine", settings)
    results["gradient"] = run_isolated("gradient", settings)
    seeds = settings["nuts_seeds"]
    results["nuts"] = {
        "numpyro_reference": median_of_runs(
            [run_isolated("nuts_reference", settings, seed) for seed in seeds]
        )
    }
    for sampler in samplers:
        results["nuts"][sampler] = median_of_runs(
            [run_isolated("nuts", settings, sampler, seed) for seed in seeds]
        )
    results["advi"] = {
        "pmbnn": run_isolated("advi", settings),
        "pmbnn_numba": run_isolated("advi", settings, "numba"),
    }
    iterations = results["advi"]["pmbnn"]["iterations"]
    results["advi"]["numpyro_svi"] = run_isolated("svi_reference", settings, iterations)
    results["minibatch"] = [
        run_isolated("minibatch", settings, rows) for rows in settings["minibatch_rows"]
    ]
    results["predict"] = [
        run_isolated("predict", settings, inputs) for inputs in settings["predict_inputs"]
    ]
    from pmbnn.inference.device import jax_sees_a_gpu

    if jax_sees_a_gpu():  # the GPU section: each figure against the CPU in the same run
        results["devices"] = [
            run_isolated("devices", settings, rows) for rows in settings["device_rows"]
        ]
    return results


def median_of_runs(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs (different seeds), the runs kept beside it."""
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return medians | {"runs": runs} if len(runs) > 1 else medians


def nuts_ratios(nuts: dict) -> dict:
    """Each backend's ESS/s against the NumPyro reference's, the best backend's, and how the
    default (`sampler = "auto"`) compares with the best and with PyMC's sampler in memory."""
    from pmbnn.inference.samplers import SamplerChoice

    reference = nuts["numpyro_reference"]
    backends = [name for name in nuts if name != "numpyro_reference"]
    out: dict = {
        f"nuts_{name}_ess_per_s_ratio_vs_numpyro": nuts[name]["ess_per_s"] / reference["ess_per_s"]
        for name in backends
    }
    best = max(backends, key=lambda name: nuts[name]["ess_per_s"])
    out["nuts_best_backend"] = best
    out["nuts_ess_per_s_ratio_vs_numpyro"] = nuts[best]["ess_per_s"] / reference["ess_per_s"]
    default = SamplerChoice.for_setting("auto").name  # what `pmbnn fit` runs here
    if default in nuts:
        out["nuts_default_backend"] = default
        out["nuts_default_ess_per_s_ratio_vs_best"] = (
            nuts[default]["ess_per_s"] / nuts[best]["ess_per_s"]
        )
    if default in nuts and "pymc" in nuts:
        out["nuts_default_peak_memory_ratio_vs_pymc"] = _total_peak_mb(nuts[default]) / (
            _total_peak_mb(nuts["pymc"])
        )
    return out


def ratios(results: dict) -> dict:
    """The named figures the targets are judged by (higher is better unless named 'time')."""
    out = nuts_ratios(results["nuts"])
    advi = results["advi"]
    out["advi_it_per_s_ratio_vs_numpyro"] = (
        advi["pmbnn"]["it_per_s"] / advi["numpyro_svi"]["it_per_s"]
    )
    out["advi_test_lpd_minus_numpyro"] = advi["pmbnn"]["test_lpd"] - advi["numpyro_svi"]["test_lpd"]
    gradient = results["gradient"]
    out["gradient_time_ratio_compiled_vs_jax_reference"] = (
        gradient["pmbnn_compiled_us"] / gradient["numpyro_us"]
    )
    out["gradient_time_ratio_pmbnn_jax_vs_jax_reference"] = (
        gradient["pmbnn_jax_us"] / gradient["numpyro_us"]
    )
    peak = results["machine"]["matmul_peak_gflops"] * 1e9
    for name in ("pmbnn_compiled", "pmbnn_jax", "numpyro"):
        rate = gradient["flops_per_gradient"] / (gradient[f"{name}_us"] * 1e-6)
        out[f"gradient_{name}_fraction_of_matmul_peak"] = rate / peak
    minibatch = results["minibatch"]
    out["minibatch_time_per_iteration_ratio_largest_vs_smallest"] = (
        minibatch[-1]["ms_per_iteration"] / minibatch[0]["ms_per_iteration"]
    )
    predict = results["predict"]
    per_input = [p["predict_seconds"] / p["inputs"] for p in predict]
    out["predict_time_per_input_ratio_largest_vs_smallest"] = per_input[-1] / per_input[0]
    largest = predict[-1]
    out["predict_time_ratio_whole_vs_forward"] = (
        largest["predict_seconds"] / largest["forward_seconds"]
    )
    return out | device_ratios(results.get("devices", []))


def _total_peak_mb(figures: dict) -> float:
    """The measuring process's peak RSS plus its largest child's (a lower bound of the total
    where several children ran at once, as PyMC's chains do: it flatters PyMC's sampler)."""
    return figures["peak_rss_mb"] + figures.get("peak_rss_children_mb", 0.0)


def device_ratios(devices: list[dict]) -> dict:
    """Per row count: GPU gradient time over the CPU's, and the device auto picked over the
    faster one (the target: never above 1.2)."""
    out = {}
    for row in devices:
        times = {name: row[f"{name}_gradient_ms"] for name in ("cpu", "gpu")}
        out[f"gradient_time_ratio_gpu_vs_cpu_{row['rows']}_rows"] = times["gpu"] / times["cpu"]
        out[f"device_auto_time_ratio_vs_best_{row['rows']}_rows"] = times[row["auto"]] / min(
            times.values()
        )
    return out


TARGETS = {  # ratio name -> (comparison, bound), from the benchmarks' issues (15: fast defaults)
    "nuts_ess_per_s_ratio_vs_numpyro": (">=", 1.5),
    "advi_it_per_s_ratio_vs_numpyro": (">=", 1.2),
    "minibatch_time_per_iteration_ratio_largest_vs_smallest": ("<=", 1.5),
    "predict_time_per_input_ratio_largest_vs_smallest": ("<=", 1.5),
    "predict_time_ratio_whole_vs_forward": ("<=", 2.0),
    "nuts_default_ess_per_s_ratio_vs_best": (">=", 1.0),  # the default is the fastest
    "nuts_default_peak_memory_ratio_vs_pymc": ("<=", 2.0),
}


def verdicts(named: dict) -> dict:
    out = {}
    # With a GPU: auto's device never more than 1.2x slower than the better one, at each size.
    auto = {name: ("<=", 1.2) for name in named if name.startswith("device_auto_time_ratio")}
    for name, (op, bound) in (TARGETS | auto).items():
        if name not in named:  # e.g. a run without PyMC's sampler has no memory ratio
            continue
        value = named[name]
        met = value >= bound if op == ">=" else value <= bound
        out[name] = {"value": value, "target": f"{op} {bound}", "met": bool(met)}
    return out


def format_table(results: dict, named: dict, settings: dict, judged: dict) -> str:
    """The printed report; `judged` is `verdicts(named)` of the run (a stored run keeps the
    targets it was judged by)."""
    base = results["baseline"]["peak_rss_mb"]
    lines = [
        f"Workload: N={N_ROWS}, D={N_FEATURES}, hidden={HIDDEN} tanh, "
        f"{results['gradient']['n_weights']} parameters; NUTS 2 chains x "
        f"({settings['nuts_tune']} tune + {settings['nuts_draws']} draws). Memory: peak RSS "
        f"above the {base:.0f} MB of a process that has only imported the libraries.",
        "",
        "NUTS                 seconds   min ESS   ESS/s   ratio  steps/draw  grad/s    sigma  MB",
    ]
    reference = results["nuts"]["numpyro_reference"]
    for name, row in results["nuts"].items():
        ratio = row["ess_per_s"] / reference["ess_per_s"]
        lines.append(
            f"  {name:<18} {row['seconds']:8.1f} {row['min_bulk_ess']:9.0f} {row['ess_per_s']:7.2f}"
            f" {ratio:7.2f} {row['leapfrog_steps_per_draw']:11.0f} {row['gradients_per_s']:7.0f}"
            f" {row['sigma_mean']:8.3f} {row['peak_rss_mb'] - base:4.0f}"
        )
    lines += ["", "ADVI (mean field)     iterations   it/s   test LPD  seconds  compile s  MB"]
    for name, row in results["advi"].items():
        label = f"pmbnn, {row['backend']}" if "backend" in row else name
        lines.append(
            f"  {label:<18} {row['iterations']:11d} {row['it_per_s']:6.0f} {row['test_lpd']:10.3f}"
            f" {row['seconds']:8.1f} {row['compile_seconds']:10.1f}"
            f" {row['peak_rss_mb'] - base:4.0f}"
        )
    gradient, peak = results["gradient"], results["machine"]["matmul_peak_gflops"]
    lines += [
        "",
        f"Gradient (value + grad of the log posterior; {gradient['flops_per_gradient'] / 1e6:.1f} "
        f"MFLOP; matmul peak {peak:.1f} GFLOP/s)",
    ]
    for name, label in (
        ("pmbnn_compiled", "pmbnn via numba (PyMC's own NUTS)"),
        ("pmbnn_jax", "pmbnn via JAX (ADVI, other samplers)"),
        ("numpyro", "NumPyro reference"),
    ):
        fraction = named[f"gradient_{name}_fraction_of_matmul_peak"]
        lines.append(f"  {label:<36} {gradient[f'{name}_us']:8.0f} us   {fraction:6.1%} of peak")
    lines += ["", f"Minibatch ADVI (batch {BATCH_SIZE})   rows      ms/iteration  MB"]
    for row in results["minibatch"]:
        lines.append(
            f"  {'':<29} {row['rows']:9d} {row['ms_per_iteration']:12.3f} "
            f"{row['peak_rss_mb'] - base:5.0f}"
        )
    lines += [
        "",
        f"Prediction ({PREDICT_DRAWS} draws)   inputs   forward s  predict s  us/input  MB",
    ]
    for row in results["predict"]:
        lines.append(
            f"  {'':<21} {row['inputs']:9d} {row['forward_seconds']:10.3f} "
            f"{row['predict_seconds']:10.3f} {1e6 * row['predict_seconds'] / row['inputs']:9.1f}"
            f" {row['peak_rss_mb'] - base:5.0f}"
        )
    lines += ["", "Targets"]
    for name, verdict in judged.items():
        mark = "met" if verdict["met"] else "MISSED"
        lines.append(f"  {name:<58} {verdict['value']:7.2f}  {verdict['target']:<7} {mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, a few minutes")
    parser.add_argument(
        "--samplers", default=",".join(SAMPLERS), help="pmbnn NUTS backends to measure"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the measurements an interrupted run of the same mode finished",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks" / "perf.json")
    args = parser.parse_args(argv)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = sorted(set(samplers) - set(SAMPLERS))
    if unknown:
        parser.error(f"unknown sampler(s) {', '.join(unknown)}; choose from {', '.join(SAMPLERS)}")
    settings = QUICK if args.quick else FULL
    # One JAX device per core, so JAX chains run in parallel (as pmbnn's own samplers do);
    # inherited by every measurement process.
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")
    verbose = os.environ.get("CI", "").lower() not in ("1", "true")
    clock = time.perf_counter()
    print(f"pmbnn perf ({'quick' if args.quick else 'full'}), one process per measurement:")
    mode = "quick" if args.quick else "full"
    # Finished measurements are kept here until the whole run succeeds (for --resume).
    cache = args.out.parent / f".perf-{mode}"
    if not args.resume and cache.exists():
        shutil.rmtree(cache)
    results = measure_all(settings, samplers, verbose, cache)
    named = ratios(results)
    print()
    print(format_table(results, named, settings, verdicts(named)))
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "settings": settings,
        "results": results,
        "ratios": named,
        "targets": verdicts(named),
        "total_seconds": time.perf_counter() - clock,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(cache, ignore_errors=True)
    print(f"\nwrote {args.out} ({record['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
