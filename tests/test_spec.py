"""Spec: defaults, TOML round trip, and messages that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmbnn.errors import PmbnnError
from pmbnn.spec import Spec, load_spec

MODELS = Path(__file__).resolve().parent.parent / "pmbnn" / "models"


def test_defaults_are_valid():
    spec = Spec()
    assert spec.network.hidden == [50] and spec.inference.method == "nuts"
    assert spec.likelihood.learned_noise


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_round_trip(path, tmp_path):
    spec = load_spec(path)
    saved = tmp_path / "spec.toml"
    saved.write_text(spec.to_toml())
    assert load_spec(saved) == spec


def test_shipped_example_is_the_documented_one():
    spec = load_spec(MODELS / "sine-gap.toml")
    assert spec.data.example == "sine-gap" and len(spec.network.hidden) == 2
    assert load_spec(MODELS / "uci-1x50.toml").prior == Spec().prior  # the measured default
    assert load_spec(MODELS / "uci-1x50.toml").network.hidden == [50]


def test_relative_data_path_resolves_against_the_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    spec_file = tmp_path / "sub" / "s.toml"
    spec_file.write_text('[data]\npath = "d.csv"\ntarget = "y"\n')
    assert load_spec(spec_file).data.path == str(tmp_path / "sub" / "d.csv")


def test_prior_kinds_bring_their_own_keys():
    """The default learns its scales; a weight_scale alone (as every spec before prior kinds
    had) still means the fixed prior; switching kind drops the other kind's keys."""
    default = Spec().prior
    assert (default.kind, default.scale_prior, default.scale_prior_scale) == (
        "hierarchical",
        "halfnormal",
        2.0,
    )
    assert default.weight_scale is None and default.learned
    old_style = Spec.model_validate({"prior": {"weight_scale": 2.0}}).prior
    assert old_style.kind == "fixed" and old_style.weight_scale == 2.0
    fixed = Spec().with_overrides(prior={"kind": "fixed"}).prior
    assert (fixed.weight_scale, fixed.scale_prior, fixed.scale_prior_scale) == (1.0, None, None)
    assert Spec().with_overrides(prior={"weight_scale": 3.0}).prior.kind == "fixed"
    ard = Spec().with_overrides(prior={"kind": "fixed"}).with_overrides(prior={"kind": "ard"})
    assert ard.prior.kind == "ard" and ard.prior.scale_prior_scale == 2.0
    assert "weight_scale" not in ard.to_toml()


def test_fixed_noise_is_saved_without_the_unused_prior():
    spec = Spec().with_overrides(likelihood={"sigma": 0.5})
    assert "sigma = 0.5" in spec.to_toml() and "sigma_prior_scale" not in spec.to_toml()


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[network]\nwidths = [3]\n",
            "unknown key [network].widths; allowed keys: hidden, activation",
        ),
        ("[network]\nhidden = [-3]\n", "[network].hidden.0 = -3"),
        (
            '[network]\nactivation = "swish"\n',
            "[network].activation = 'swish' is not allowed; "
            "expected 'tanh', 'relu', 'gelu', 'softplus' or 'sigmoid'",
        ),
        ('[inference]\ndraws = "many"\n', "[inference].draws = 'many'"),
        ('[inference]\nmethod = "mcmc"\n', "[inference].method = 'mcmc' is not allowed"),
        ("[data]\ntest_fraction = 1.5\n", "[data].test_fraction = 1.5"),
        ("[priors]\nweight_scale = 1\n", "unknown key [priors]"),
        (
            '[prior]\nkind = "horseshoe"\n',
            "[prior].kind = 'horseshoe' is not allowed; expected 'fixed', 'hierarchical' or 'ard'",
        ),
        (
            '[prior]\nscale_prior = "normal"\n',
            "[prior].scale_prior = 'normal' is not allowed; "
            "expected 'halfnormal', 'halfcauchy' or 'exponential'",
        ),
        ("[prior]\nscale_prior_scale = -1.0\n", "[prior].scale_prior_scale = -1.0"),
        (
            '[prior]\nkind = "ard"\nweight_scale = 2.0\n',
            "[prior]: weight_scale is the scale of kind = 'fixed'; kind = 'ard' learns it",
        ),
        (
            '[prior]\nkind = "fixed"\nscale_prior_scale = 2.0\n',
            "[prior]: scale_prior, scale_prior_scale and centred describe a learned scale",
        ),
        ("[prior]\nlayer_scale = 2.0\n", "unknown key [prior].layer_scale; allowed keys: kind,"),
        ("[network\n", "is not valid TOML"),
    ],
)
def test_invalid_specs_name_the_problem(tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(PmbnnError, match=None) as info:
        load_spec(path)
    assert expected in str(info.value)


def test_python_callers_may_pass_tuples_and_numpy_numbers():
    """Strict about kinds (no bool for an int, no string for a number), not about containers."""
    import numpy as np

    spec = Spec().with_overrides(
        network={"hidden": (np.int64(3), 2)},
        inference={"seed": np.int64(7), "learning_rate": np.float32(0.5)},
        data={"features": ("a", "b")},
    )
    assert spec.network.hidden == [3, 2] and spec.inference.seed == 7
    assert spec.data.features == ["a", "b"] and spec.inference.learning_rate == 0.5
    with pytest.raises(PmbnnError, match=r"\[inference\].seed = True"):
        Spec().with_overrides(inference={"seed": np.bool_(True)})
