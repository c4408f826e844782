"""BlackJAX's NUTS with a metric learned from draws and their gradients.

PyMC's own BlackJAX and NumPyro paths adapt a diagonal mass matrix from the variance of
the draws alone (Stan's window adaptation). On a BNN posterior that metric leaves every tree
at the depth limit (1023 gradients per draw on the perf workload). The Fisher-divergence
metric of Sountsov et al. (2025), nutpie's, uses each draw's gradient too (the
diagonal M^-1_ii = sqrt(Var x_i / Var grad_i)) and halves the trees for the same effective
sample size. BlackJAX ships that adaptation (``low_rank_window_adaptation``);
this module runs it inside one compiled JAX program per chain, then NUTS with the adapted
step size and metric, and hands back PyMC's trace layout (`nuts.py` adds the common stats).

The draws start from the last warm-up state, not from BlackJAX's re-initialisation at the
window mean: on a multimodal posterior that mean need not be a typical point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm
from rich.progress import Progress
from xarray import DataTree

from pmbnn.spec import InferenceSpec

# Low-rank directions beside the diagonal. None: on the perf workload (seed 0) nutpie's
# default of 10 left the trees at the depth limit (1019 gradients per draw, against 510
# with the diagonal alone), as nutpie's own low-rank adaptation did (764 against 511).
MAX_RANK = 0
# The warm-up starts from the identity metric: starting from nutpie's 1 / |gradient| at the
# initial point measured slower (2.80 and 2.49 ESS/s against 2.91 and 3.14, seeds 0 and 1).
# Fast steps (step size only) before the first metric window: 5% of the warm-up, not Stan's
# 75 of 1000, since gradients make the first window's metric good early. At 300 warm-up
# steps, 15 against Stan's 75: 3.70 and 3.14 ESS/s against 2.91 and 3.14 (seeds 0 and 1).
INITIAL_BUFFER_SHARE = 0.05


def sample_blackjax(
    model: pm.Model, settings: InferenceSpec, parallel: bool, progress: bool
) -> DataTree:
    """`settings.chains` chains of `settings.tune` adaptation and `settings.draws` draws.

    `parallel` runs one chain per JAX device (pmap), else all chains vectorized (vmap).
    The chains run as one compiled program; with `progress`, each NUTS step reports to a
    progress bar through a host callback (a few microseconds against a tree's milliseconds).
    """
    import jax
    from arviz_base import from_dict
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )
    from pymc.sampling.jax import (
        _get_batched_jittered_initial_points,
        _postprocess_samples,
        get_jaxified_graph,
        get_jaxified_logp,
    )
    from pymc.util import get_default_varnames

    logp = get_jaxified_logp(model)  # the log density (PyMC's "negative" of the potential)
    start = _get_batched_jittered_initial_points(
        model=model,
        chains=settings.chains,
        initvals=None,
        random_seed=settings.seed,
        logp_fn=logp,
    )
    if settings.chains == 1:
        start = [np.asarray(value)[None] for value in start]
    keys = jax.random.split(jax.random.PRNGKey(settings.seed), settings.chains)
    steps = settings.chains * (settings.tune + settings.draws)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("NUTS (blackjax)", total=steps)
        tick = (lambda: bar.advance(task)) if progress else None
        run_chain = _chain_program(logp, settings, tick)
        mapped = jax.pmap(run_chain) if parallel else jax.vmap(run_chain)
        positions, stats = jax.block_until_ready(mapped(keys, start))

    names = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
    values = _postprocess_samples(
        get_jaxified_graph(inputs=model.value_vars, outputs=names),
        positions,
        postprocessing_vectorize="scan",
    )
    coords, dims = coords_and_dims_for_inferencedata(model)
    groups: dict[str, Any] = {
        "posterior": {v.name: np.asarray(x) for v, x in zip(names, values, strict=True)},
        "sample_stats": {name: np.asarray(x) for name, x in stats.items()},
    }
    for group, found in (
        ("observed_data", find_observations(model)),
        ("constant_data", find_constants(model)),
    ):
        if found:
            groups[group] = found
    return from_dict(groups, coords=coords, dims=dims, sample_dims=["chain", "draw"])


def _chain_program(
    logp: Callable[[Any], Any], settings: InferenceSpec, tick: Callable[[], None] | None
) -> Callable[[Any, Any], tuple[Any, dict[str, Any]]]:
    """One chain: Fisher-divergence warm-up (Stan's window schedule), then NUTS draws."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.low_rank_adaptation import base as low_rank_adaptation
    from blackjax.adaptation.window_adaptation import build_schedule
    from blackjax.mcmc.metrics import gaussian_euclidean_low_rank

    tune, draws = settings.tune, settings.draws
    adapt_init, adapt_update, adapt_final = low_rank_adaptation(
        max_rank=MAX_RANK, target_acceptance_rate=settings.target_accept
    )
    nuts_step = blackjax.nuts.build_kernel()

    def run_chain(key: Any, position: Any) -> tuple[Any, dict[str, Any]]:
        warmup_key, draw_key = jax.random.split(key)
        state = blackjax.nuts.init(position, logp)
        # BlackJAX's buffer: the largest slow window of the schedule (older draws drop out).
        buffer = min(2 * max(tune // 5, 128), max(tune, 1))
        adaptation = adapt_init(position, state.logdensity_grad, 1.0, buffer)

        def warmup_step(carry: tuple[Any, Any], xs: tuple[Any, Any]) -> tuple[Any, None]:
            state, adaptation = carry
            step_key, stage = xs
            metric = gaussian_euclidean_low_rank(adaptation.sigma, adaptation.U, adaptation.lam)
            state, info = nuts_step(step_key, state, logp, adaptation.step_size, metric)
            adaptation = adapt_update(
                adaptation, stage, state.position, state.logdensity_grad, info.acceptance_rate
            )
            _report(tick, info)
            return (state, adaptation), None

        if tune > 0:
            schedule = build_schedule(
                tune, initial_buffer_size=max(int(INITIAL_BUFFER_SHARE * tune), 10)
            )
            stages = tuple(jnp.asarray(column) for column in zip(*schedule, strict=True))
            (state, adaptation), _ = jax.lax.scan(
                warmup_step, (state, adaptation), (jax.random.split(warmup_key, tune), stages)
            )
            step_size, sigma, _, u, lam = adapt_final(adaptation)
        else:
            step_size, sigma, u, lam = 1.0, adaptation.sigma, adaptation.U, adaptation.lam
        metric = gaussian_euclidean_low_rank(sigma, u, lam)

        def draw_step(state: Any, step_key: Any) -> tuple[Any, tuple[Any, dict[str, Any]]]:
            state, info = nuts_step(step_key, state, logp, step_size, metric)
            _report(tick, info)
            stats = {
                "diverging": info.is_divergent,
                "energy": info.energy,
                "tree_depth": info.num_trajectory_expansions,
                "n_steps": info.num_integration_steps,
                "acceptance_rate": info.acceptance_rate,
                "lp": state.logdensity,
                "step_size": jnp.asarray(step_size),
            }
            return state, (state.position, stats)

        _, (positions, stats) = jax.lax.scan(draw_step, state, jax.random.split(draw_key, draws))
        return positions, stats

    return run_chain


def _report(tick: Callable[[], None] | None, after: Any) -> None:
    """Call `tick` on the host once the step that produced `after` is done."""
    if tick is not None:
        import jax

        jax.debug.callback(lambda _: tick(), after.acceptance_rate)
