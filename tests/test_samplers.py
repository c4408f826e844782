"""NUTS backends: a missing optional backend is one clear error naming the extra."""

from __future__ import annotations

import importlib.util

import pytest

from pmbnn.errors import PmbnnError
from pmbnn.inference.samplers import SAMPLERS
from pmbnn.spec import Spec, spec_from_dict
from tests.helpers import assert_usage_error, run_cli


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
    assert Spec().inference.sampler == "pymc"


def test_cli_refuses_a_missing_backend_before_fitting(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a)
    )
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "fit", "--sampler", "blackjax", "--out", str(out))
    assert_usage_error(code, err, "blackjax sampler needs jax", "pmbnn[jax]")
    assert not out.exists()
