"""pmbnn prior: the prior predictive page, written whole, checked in Chromium, never overwritten
without --force; and the same panel in a run's report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pmbnn.cli import main
from pmbnn.manifest import MANIFEST
from pmbnn.prior_check import prior_predictive
from pmbnn.spec import load_builtin_spec
from tests.helpers import assert_usage_error, open_in_chromium, run_cli, strict_json

DRAWS = 200


@pytest.fixture(scope="session")
def prior_page(tmp_path_factory) -> Path:
    """The prior of the built-in example's spec with a learned scale (1-D: function draws too)."""
    folder = tmp_path_factory.mktemp("prior")
    spec = load_builtin_spec("sine-gap").with_overrides(prior={"kind": "hierarchical"})
    (folder / "hier.toml").write_text(spec.to_toml())
    out = folder / "page"
    assert main(["prior", str(folder / "hier.toml"), "--draws", str(DRAWS), "--out", str(out)]) == 0
    return out


def test_prior_page_numbers_are_the_prior_predictive(prior_page):
    numbers = strict_json((prior_page / "prior.json").read_text())
    assert sorted(p.name for p in prior_page.iterdir()) == ["index.html", MANIFEST, "prior.json"]
    spec = load_builtin_spec("sine-gap").with_overrides(prior={"kind": "hierarchical"})
    prior = prior_predictive(spec, DRAWS)  # same seed, same draws
    sd = numbers["summary"]["sd"]
    assert sd["observed"] == pytest.approx(prior.y.std())
    assert sd["prior f"]["q50"] == pytest.approx(np.median(prior.f.std(axis=1)))
    assert sd["prior y"]["below_observed"] == pytest.approx(
        np.mean(prior.y_rep.std(axis=1) < prior.y.std())
    )
    assert numbers["n_train"] == len(prior.y) == 96


def test_prior_page_renders_every_image(prior_page, tmp_path):
    problems, images, _ = open_in_chromium(prior_page, tmp_path / "prior.png")
    assert problems == []
    alts = {alt for alt, *_ in images}
    assert {
        "prior predictive statistics against the observed value",
        "prior function draws over the data",
        "prior of each layer's weight scale",
    } <= alts
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt


def test_prior_page_is_not_overwritten_without_force(prior_page, capsys):
    before = (prior_page / "index.html").read_bytes()
    code, _, err = run_cli(capsys, "prior", "--draws", "50", "--out", str(prior_page))
    assert_usage_error(code, err, "already exists", "--force")
    assert (prior_page / "index.html").read_bytes() == before
    code, out, _ = run_cli(capsys, "prior", "--draws", "50", "--out", str(prior_page), "--force")
    assert code == 0 and "prior f: sd over the inputs" in out
    assert json.loads((prior_page / "prior.json").read_text())["draws"] == 50


def test_prior_refuses_bad_input_before_writing(tmp_path, capsys):
    out = tmp_path / "p"
    code, _, err = run_cli(capsys, "prior", "--draws", "1", "--out", str(out))
    assert_usage_error(code, err, "--draws must be at least 2")
    code, _, err = run_cli(capsys, "prior", "--data", str(tmp_path / "none.csv"), "--out", str(out))
    assert code == 2 and "none.csv" in err
    huge = load_builtin_spec("sine-gap").with_overrides(prior={"weight_scale": 1e200})
    (tmp_path / "huge.toml").write_text(huge.to_toml())
    code, _, err = run_cli(capsys, "prior", str(tmp_path / "huge.toml"), "--out", str(out))
    assert_usage_error(code, err, "overflow", "weight_scale")
    assert not out.exists()
