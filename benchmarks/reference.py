"""The benchmark's reference: the same BNN written directly in NumPyro.

Same network, priors (read from the pmbnn spec), likelihood and variable names as
`pmbnn.model.build_model`, so its draws go through pmbnn's own prediction code and every
figure is computed the same way for both. Starting points match pmbnn's too: a prior draw
(``init_to_sample``), and ADVI's initial sd of 0.01.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO, init_to_sample
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.util import initialize_model

from pmbnn.inference.advi import START_SD
from pmbnn.model import layer_names
from pmbnn.spec import Spec


def bnn_model(spec: Spec, x: jnp.ndarray, y: jnp.ndarray | None = None) -> None:
    """The NumPyro program of pmbnn's BNN (tanh hidden layers, fan-in Normal priors)."""
    prior, hidden = spec.prior, spec.network.hidden
    h, fan_in = x, x.shape[1]
    for layer, (w_name, b_name) in enumerate(layer_names(hidden)):
        is_output = layer == len(hidden)
        w_sd = prior.weight_scale / np.sqrt(fan_in) if prior.fan_in else prior.weight_scale
        w_shape = (fan_in,) if is_output else (fan_in, hidden[layer])
        w = numpyro.sample(w_name, dist.Normal(0.0, w_sd).expand(w_shape).to_event(len(w_shape)))
        b_shape = () if is_output else (hidden[layer],)
        b = numpyro.sample(
            b_name, dist.Normal(0.0, prior.bias_scale).expand(b_shape).to_event(len(b_shape))
        )
        h = h @ w + b
        if not is_output:
            h, fan_in = jnp.tanh(h), hidden[layer]
    sigma = numpyro.sample("sigma", dist.HalfNormal(spec.likelihood.sigma_prior_scale))
    numpyro.sample("y", dist.Normal(h, sigma), obs=y)


def as_posterior(samples: dict[str, np.ndarray], spec: Spec) -> xr.Dataset:
    """NumPyro draws (chain, draw, ...) as a posterior dataset in pmbnn's names and dims."""
    hidden = spec.network.hidden
    dims = {"sigma": ()}
    in_dim = "feature"
    for layer, (w_name, b_name) in enumerate(layer_names(hidden)):
        if layer == len(hidden):
            dims |= {w_name: (in_dim,), b_name: ()}
        else:
            dims |= {w_name: (in_dim, f"unit_{layer}"), b_name: (f"unit_{layer}",)}
            in_dim = f"unit_{layer}"
    return xr.Dataset(
        {name: (("chain", "draw", *dims[name]), np.asarray(samples[name])) for name in dims}
    )


def sample_nuts(
    spec: Spec, x: np.ndarray, y: np.ndarray, chain_method: str
) -> tuple[xr.Dataset, np.ndarray, float]:
    """(posterior, leapfrog steps per kept draw (chain, draw), wall seconds incl. compiling)."""
    settings = spec.inference
    kernel = NUTS(
        bnn_model, target_accept_prob=settings.target_accept, init_strategy=init_to_sample
    )
    mcmc = MCMC(
        kernel,
        num_warmup=settings.tune,
        num_samples=settings.draws,
        num_chains=settings.chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    clock = time.perf_counter()
    mcmc.run(
        jax.random.PRNGKey(settings.seed),
        spec,
        jnp.asarray(x),
        jnp.asarray(y),
        extra_fields=("num_steps",),
    )
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - clock
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    return as_posterior(samples, spec), steps, seconds


def fit_svi(
    spec: Spec, x: np.ndarray, y: np.ndarray, iterations: int, draws: int, repeats: int = 1
) -> tuple[xr.Dataset, float, float]:
    """Mean-field Gaussian VI (AutoNormal) with Adam at pmbnn's learning rate.

    Returns (posterior of `draws` draws, seconds of a timed run, compile seconds). The whole
    loop is one jitted ``fori_loop`` (NumPyro's fastest idiom); it is compiled and run once,
    then run `repeats` more times from the same start: the median of those is the timing.
    """
    settings = spec.inference
    guide = AutoNormal(bnn_model, init_loc_fn=init_to_sample, init_scale=START_SD)
    svi = SVI(bnn_model, guide, numpyro.optim.Adam(settings.learning_rate), Trace_ELBO())
    x, y = jnp.asarray(x), jnp.asarray(y)
    start = svi.init(jax.random.PRNGKey(settings.seed), spec, x, y)

    @jax.jit
    def run(state):
        return jax.lax.fori_loop(0, iterations, lambda _, s: svi.update(s, spec, x, y)[0], state)

    clock = time.perf_counter()
    jax.block_until_ready(run(start))
    compile_and_run = time.perf_counter() - clock
    timings = []
    for _ in range(repeats):
        clock = time.perf_counter()
        state = jax.block_until_ready(run(start))
        timings.append(time.perf_counter() - clock)
    seconds = float(np.median(timings))
    params = svi.get_params(state)
    samples = guide.sample_posterior(
        jax.random.PRNGKey(settings.seed + 1), params, sample_shape=(1, draws)
    )
    posterior = as_posterior({k: v for k, v in samples.items() if k != "y"}, spec)
    return posterior, seconds, compile_and_run - seconds


def potential_and_grad(spec: Spec, x: np.ndarray, y: np.ndarray):
    """(jitted value-and-gradient of the negative log density, a flat starting point)."""
    info = initialize_model(
        jax.random.PRNGKey(0),
        bnn_model,
        model_args=(spec, jnp.asarray(x), jnp.asarray(y)),
        init_strategy=init_to_sample,
    )
    return jax.jit(jax.value_and_grad(info.potential_fn)), info.param_info.z
