"""NUTS backends: a missing optional backend is one clear error naming the extra."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pmbnn.errors import PmbnnError
from pmbnn.inference.samplers import RELATIVE_SPEED, SAMPLERS, SamplerChoice
from pmbnn.run import load_run
from pmbnn.spec import Spec, spec_from_dict
from pmbnn.text import inference_description
from tests.helpers import assert_usage_error, require_extra, run_cli


def test_missing_backend_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numpyro" else real(name, *a)
    )
    with pytest.raises(PmbnnError, match=r"needs numpyro.*pip install 'pmbnn\[jax\]'"):
        SAMPLERS["numpyro"].require()
    SAMPLERS["pymc"].require()  # always there


def test_unknown_sampler_is_a_spec_error():
    with pytest.raises(PmbnnError, match=r"\[inference\].sampler = 'stan'"):
        spec_from_dict({"inference": {"sampler": "stan"}})


def test_auto_is_the_default_and_takes_the_fastest_installed(monkeypatch):
    """RELATIVE_SPEED's order (measured in perf.json); without the jax extra the next one
    installed, with a reason that names what is missing and what it would gain."""
    require_extra("blackjax")
    assert Spec().inference.sampler == "auto"
    assert list(RELATIVE_SPEED) == sorted(RELATIVE_SPEED, key=RELATIVE_SPEED.get, reverse=True)
    assert SamplerChoice.for_setting("auto") == SamplerChoice(
        "blackjax", "auto: the fastest installed"
    )
    assert SamplerChoice.for_setting("pymc") == SamplerChoice("pymc", "as set")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("jax", "nutpie") else real(name, *a),
    )
    fallback = SamplerChoice.for_setting("auto")
    assert fallback.name == "pymc"
    assert fallback.reason == (
        "auto: blackjax is not installed; pip install 'pmbnn[jax]' samples about 4.8x faster"
    )
    settings = Spec().with_overrides(inference={"sampler": fallback.name}).inference
    described = inference_description(settings, fallback.reason)
    assert described.startswith("nuts (pymc, auto: blackjax is not installed; pip install")


def test_auto_gives_the_same_draws_for_the_same_seed(blr_spec):
    """What `auto` picks is fixed by what is installed, and that sampler is seeded: two fits
    with one seed agree to the bit, another seed differs."""
    require_extra("blackjax")
    import pmbnn

    spec = blr_spec.with_overrides(inference={"method": "nuts", "tune": 50, "draws": 50})
    draws = []
    for seed in (3, 3, 4):
        fitted, _ = pmbnn.fit(spec.with_overrides(inference={"seed": seed}))
        assert fitted.spec.inference.sampler == "blackjax"
        draws.append(fitted.posterior["w_out"].values)
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_a_run_records_the_sampler_auto_chose(sine_run):
    """The built-in example as a newcomer runs it: its spec names the sampler that ran (so a
    reload or refit does not depend on what is installed then) and its meta says why."""
    require_extra("blackjax")
    fitted = load_run(sine_run)
    assert fitted.spec.inference.sampler == "blackjax"
    assert fitted.meta["sampler"] == {"name": "blackjax", "chosen": "auto: the fastest installed"}


def test_cli_refuses_a_missing_backend_before_fitting(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "--sampler", "blackjax", "--out", str(out))
    assert_usage_error(code, err, "blackjax sampler needs jax", "pmbnn[jax]")
    assert not out.exists()


def test_blackjax_learns_each_scale_from_draws_and_gradients():
    """Independent Normals with sds 0.01 and 100: under the identity metric the step size
    fits the narrow one and a trajectory across the wide one needs ~10^4 steps (every tree
    at the depth limit, 1023). The adapted metric whitens both, so trees stay a few steps
    long, and the draws have the right scales (sd of an sd estimate ~ 1/sqrt(2 ESS) ~ 3%)."""
    require_extra("jax", "blackjax")
    import pymc as pm

    from pmbnn.inference.blackjax_nuts import sample_blackjax

    with pm.Model() as model:
        pm.Normal("x", 0.0, np.array([0.01, 100.0]), shape=2)
    settings = Spec().with_overrides(inference={"tune": 300, "draws": 500, "chains": 2}).inference
    trace = sample_blackjax(model, settings, parallel=False, progress=False)
    stats = trace["sample_stats"]
    assert float(stats["n_steps"].mean()) < 8
    assert not bool(stats["diverging"].any())
    draws = trace["posterior"]["x"].values.reshape(-1, 2)
    np.testing.assert_allclose(draws.std(axis=0), [0.01, 100.0], rtol=0.2)
    again = sample_blackjax(model, settings, parallel=False, progress=False)
    np.testing.assert_array_equal(again["posterior"]["x"].values, trace["posterior"]["x"].values)


def test_blackjax_chunks_change_nothing_but_memory(monkeypatch):
    """The run is split into compiled calls of `CHUNK` steps (peak memory); the last chunk is
    padded, and a padded step must leave the chain and the warm-up's adaptation untouched:
    draws split 7 at a time (tune and draws not multiples of 7) equal one call's bit for bit."""
    require_extra("jax", "blackjax")
    import pymc as pm

    from pmbnn.inference import blackjax_nuts

    with pm.Model() as model:
        pm.Normal("x", 0.0, np.array([0.5, 3.0]), shape=2)
    settings = Spec().with_overrides(inference={"tune": 40, "draws": 30, "chains": 2}).inference
    monkeypatch.setattr(blackjax_nuts, "CHUNK", 1000)
    whole = blackjax_nuts.sample_blackjax(model, settings, parallel=False, progress=False)
    monkeypatch.setattr(blackjax_nuts, "CHUNK", 7)
    chunked = blackjax_nuts.sample_blackjax(model, settings, parallel=False, progress=False)
    assert chunked["posterior"].sizes["draw"] == 30
    np.testing.assert_array_equal(chunked["posterior"]["x"].values, whole["posterior"]["x"].values)
    for name in ("n_steps", "step_size", "lp"):
        np.testing.assert_array_equal(
            chunked["sample_stats"][name].values, whole["sample_stats"][name].values
        )


def test_the_metric_buffer_holds_the_longest_slow_window():
    """At tune 1000 the schedule's last slow window is 525 steps; BlackJAX's buffer of
    2 * max(tune // 5, 128) = 400 lost draws and kept counting them (a metric mean shrunk by
    400/525). The windows are Stan's doubling ones: 25, 50, 100, 200, then the rest."""
    require_extra("blackjax")
    from blackjax.adaptation.window_adaptation import build_schedule

    from pmbnn.inference.blackjax_nuts import largest_slow_window

    assert largest_slow_window(build_schedule(1000, initial_buffer_size=50)) == 525
    assert largest_slow_window(build_schedule(300, initial_buffer_size=15)) == 160
    assert largest_slow_window([]) == 0


def test_the_warm_up_gets_a_buffer_that_holds_its_longest_window(monkeypatch):
    """What _run_chains hands BlackJAX's adaptation at tune 1000 (caught at its init, before
    any step runs)."""
    require_extra("blackjax")
    import jax.numpy as jnp
    from blackjax.adaptation import low_rank_adaptation

    from pmbnn.inference import blackjax_nuts
    from pmbnn.spec import InferenceSpec

    class Seen(Exception):
        pass

    def recording_base(**kwargs):
        _, update, final = original(**kwargs)

        def init_and_stop(position, gradient, step_size, buffer):
            raise Seen(buffer)

        return init_and_stop, update, final

    original = low_rank_adaptation.base
    monkeypatch.setattr(low_rank_adaptation, "base", recording_base)
    settings = InferenceSpec(method="nuts", tune=1000, draws=1, chains=1)
    start = [np.zeros((1, 2))]
    with pytest.raises(Seen) as seen:
        blackjax_nuts._run_chains(
            lambda x: -0.5 * jnp.sum(x[0] ** 2), settings, np.zeros((1, 2), np.uint32),
            start, False, None,
        )  # fmt: skip
    assert seen.value.args[0] >= 525


def test_pymc_chains_start_apart_in_every_variable():
    """PyMC's sampler gets a compiled step, which makes pm.sample skip its jitter: each chain
    must still start from its own point in every free variable (noise sd and layer scales
    included), as R-hat assumes, and the same seed must give the same starts."""
    from pmbnn.inference.samplers import PymcSampler, jittered_starts
    from pmbnn.model import build_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    spec = Spec().with_overrides(
        network={"hidden": [3]},
        prior={"kind": "ard"},
        inference={"method": "nuts", "sampler": "pymc", "chains": 3, "seed": 7},
    )
    bnn = build_model(spec, x, x[:, 0], ["a", "b"], target_scale=1.0)
    starts = SAMPLERS["pymc"].options(bnn, spec.inference, step=object())["initvals"]
    assert isinstance(SAMPLERS["pymc"], PymcSampler) and len(starts) == 3
    assert set(starts[0]) == {rv.name for rv in bnn.model.free_RVs}
    for name in starts[0]:
        values = [np.asarray(start[name]) for start in starts]
        assert all(np.all(np.isfinite(v)) for v in values), name
        assert not np.array_equal(values[0], values[1]), name
        assert not np.array_equal(values[1], values[2]), name
    again = jittered_starts(bnn.model, 3, 7)
    for start, repeat in zip(starts, again, strict=True):
        for name in start:
            np.testing.assert_array_equal(start[name], repeat[name])
    assert all(np.all(start["sigma"] > 0) for start in starts)
