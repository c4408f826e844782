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

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pymc as pm
from rich.progress import Progress
from xarray import DataTree

from pmbnn.spec import InferenceSpec

# Low-rank directions beside the diagonal: 0, the diagonal only. On the perf workload (seed 0)
# nutpie's default of 10 left the trees at the depth limit (1019 gradients per draw, against
# 510 with the diagonal alone), as nutpie's own low-rank adaptation did (764 against 511).
MAX_RANK = 0
# The warm-up starts from the identity metric: starting from nutpie's 1 / |gradient| at the
# initial point measured slower (2.80 and 2.49 ESS/s against 2.91 and 3.14, seeds 0 and 1).
# Fast steps (step size only) before the first metric window: 5% of the warm-up, not Stan's
# 75 of 1000, since gradients make the first window's metric good early. At 300 warm-up
# steps, 15 against Stan's 75: 3.70 and 3.14 ESS/s against 2.91 and 3.14 (seeds 0 and 1).
INITIAL_BUFFER_SHARE = 0.05
# NUTS steps per compiled call. With the whole run in one call, JAX's CPU client with several
# devices (pmap) kept the buffers each tree freed from going back to the OS until the call
# returned: peak RSS grew by about 2 KB per leapfrog step, to 4.2 GB on the perf workload
# (2 x 600 draws, 1023 steps each). Between calls it is returned; a call of 25 draws there
# takes a few seconds, so the split costs nothing measurable.
CHUNK = 25


def sample_blackjax(
    model: pm.Model, settings: InferenceSpec, parallel: bool, progress: bool
) -> DataTree:
    """`settings.chains` chains of `settings.tune` adaptation and `settings.draws` draws.

    `parallel` runs one chain per JAX device (pmap), else all chains vectorized (vmap).
    The chains run as one compiled program, called once per `CHUNK` steps; with `progress`,
    each NUTS step reports to a progress bar through a host callback (a few microseconds
    against a tree's milliseconds).
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
        positions, stats = _run_chains(logp, settings, keys, start, parallel, tick)

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


def _run_chains(
    logp: Callable[[Any], Any],
    settings: InferenceSpec,
    keys: Any,
    start: Any,
    parallel: bool,
    tick: Callable[[], None] | None,
) -> tuple[Any, dict[str, Any]]:
    """Fisher-divergence warm-up (Stan's window schedule), then NUTS draws, `CHUNK` steps
    per compiled call; the chains' state stays on their devices between calls."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.low_rank_adaptation import base as low_rank_adaptation
    from blackjax.adaptation.window_adaptation import build_schedule
    from blackjax.mcmc.metrics import gaussian_euclidean_low_rank

    tune, draws, chains = settings.tune, settings.draws, settings.chains
    adapt_init, adapt_update, adapt_final = low_rank_adaptation(
        max_rank=MAX_RANK, target_acceptance_rate=settings.target_accept
    )
    nuts_step = blackjax.nuts.build_kernel()
    first = max(int(INITIAL_BUFFER_SHARE * tune), 10)
    schedule = build_schedule(tune, initial_buffer_size=first) if tune > 0 else []
    # BlackJAX's buffer size, raised to hold every draw of the longest slow window: at some
    # tunes its 2 * max(tune // 5, 128) is smaller than this schedule's last window (400
    # against 525 at tune 1000), and a full buffer keeps counting draws it no longer holds,
    # shrinking the metric's mean and inflating its variances.
    buffer = max(min(2 * max(tune // 5, 128), max(tune, 1)), largest_slow_window(schedule))

    def init(position: Any) -> tuple[Any, Any]:
        state = blackjax.nuts.init(position, logp)
        return state, adapt_init(position, state.logdensity_grad, 1.0, buffer)

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

    def adapted(adaptation: Any) -> tuple[Any, Any, Any, Any]:
        if tune == 0:
            return jnp.asarray(1.0), adaptation.sigma, adaptation.U, adaptation.lam
        step_size, sigma, _, u, lam = adapt_final(adaptation)
        return step_size, sigma, u, lam

    def draw_step(carry: tuple[Any, Any], step_key: Any) -> tuple[Any, tuple[Any, Any]]:
        state, (step_size, sigma, u, lam) = carry
        metric = gaussian_euclidean_low_rank(sigma, u, lam)
        state, info = nuts_step(step_key, state, logp, step_size, metric)
        _report(tick, info)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "tree_depth": info.num_trajectory_expansions,
            "n_steps": info.num_integration_steps,
            "acceptance_rate": info.acceptance_rate,
            "lp": state.logdensity,
            "step_size": step_size,
        }
        return (state, (step_size, sigma, u, lam)), (state.position, stats)

    mapped = jax.pmap if parallel else (lambda f: jax.jit(jax.vmap(f)))
    warmup_chunk, draw_chunk = (mapped(_scan_chunk(step)) for step in (warmup_step, draw_step))

    def chain_keys(key: Any) -> tuple[Any, Any]:
        warmup_key, draw_key = jax.random.split(key)
        return jax.random.split(warmup_key, tune), jax.random.split(draw_key, draws)

    warmup_keys, draw_keys = jax.vmap(chain_keys)(keys)
    state, adaptation = mapped(init)(start)
    if tune > 0:
        stages = tuple(
            np.broadcast_to(column, (chains, tune)) for column in zip(*schedule, strict=True)
        )
        for xs in _chunks((warmup_keys, stages), tune):
            (state, adaptation), _ = warmup_chunk((state, adaptation), xs)
    carry = (state, mapped(adapted)(adaptation))
    outputs = []
    for xs in _chunks(draw_keys, draws):
        carry, output = draw_chunk(carry, xs)
        outputs.append(output)
    positions, stats = jax.tree.map(
        lambda *parts: np.concatenate([np.asarray(p) for p in parts], axis=1)[:, :draws],
        *outputs,
    )
    return positions, stats


def largest_slow_window(schedule: Any) -> int:
    """Steps in the longest metric-learning (slow, stage 1) window of a warm-up schedule of
    (stage, window ends here) rows."""
    longest = run = 0
    for stage, window_ends in np.asarray(schedule).reshape(-1, 2):
        run = run + 1 if stage == 1 else 0
        longest = max(longest, run)
        if window_ends:
            run = 0
    return longest


def _scan_chunk(step: Callable[[Any, Any], tuple[Any, Any]]) -> Callable[[Any, Any], Any]:
    """`step` scanned over one chunk; where the chunk is padding (`valid` false) the carry
    passes through unchanged, so the warm-up's adaptation never sees a padded step."""
    import jax
    import jax.numpy as jnp

    def masked(carry: Any, xs: tuple[Any, Any]) -> tuple[Any, Any]:
        valid, inner = xs
        shapes = jax.eval_shape(step, carry, inner)[1]

        def skip(carry: Any, _: Any) -> tuple[Any, Any]:
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        return jax.lax.cond(valid, step, skip, carry, inner)

    def chunk(carry: Any, xs: tuple[Any, Any]) -> tuple[Any, Any]:
        return jax.lax.scan(masked, carry, xs)

    return chunk


def _chunks(xs: Any, steps: int) -> Iterator[tuple[Any, Any]]:
    """Per-chain inputs of `steps` steps (axis 1) in chunks of `CHUNK`, the last padded,
    each as (valid, inputs)."""
    import jax

    padded = -(-steps // CHUNK) * CHUNK
    valid = np.arange(padded) < steps
    xs = jax.tree.map(
        lambda x: (
            np.concatenate([x, np.repeat(x[:, -1:], padded - steps, axis=1)], axis=1)
            if padded > steps
            else np.asarray(x)
        ),
        xs,
    )
    chains = jax.tree.leaves(xs)[0].shape[0]
    for begin in range(0, padded, CHUNK):
        window = slice(begin, begin + CHUNK)
        yield (
            np.broadcast_to(valid[window], (chains, CHUNK)),
            jax.tree.map(lambda x, window=window: x[:, window], xs),
        )


def _report(tick: Callable[[], None] | None, after: Any) -> None:
    """Call `tick` on the host once the step that produced `after` is done."""
    if tick is not None:
        import jax

        jax.debug.callback(lambda _: tick(), after.acceptance_rate)
