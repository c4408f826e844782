"""Shared, session-scoped fits: each PyTensor graph compiles once for the whole suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pmbnn.cli import main
from pmbnn.run import load_run
from pmbnn.spec import Spec

ROOT = Path(__file__).resolve().parent.parent

# Bayesian linear regression with a known posterior: y = X w + b + N(0, NOISE_SD^2).
BLR_ROWS, BLR_NOISE_SD = 40, 0.5
BLR_PROBES = np.array([[0.0, 0.0], [2.0, -2.0], [-3.0, 1.0]])


@pytest.fixture(scope="session")
def blr_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BLR_ROWS, 2))
    y = x @ np.array([1.0, -0.5]) + 0.3 + BLR_NOISE_SD * rng.normal(size=BLR_ROWS)
    path = tmp_path_factory.mktemp("blr") / "blr.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def blr_spec(blr_csv) -> Spec:
    """Zero hidden layers, fixed noise, raw units: exactly Bayesian linear regression."""
    return Spec().with_overrides(
        network={"hidden": []},
        likelihood={"sigma": BLR_NOISE_SD},
        data={"path": str(blr_csv), "target": "y", "test_fraction": 0.0, "standardize": False},
    )


@pytest.fixture(scope="session")
def sine_run(tmp_path_factory) -> Path:
    """The built-in example, fitted exactly as a newcomer's `python -m pmbnn fit` does."""
    out = tmp_path_factory.mktemp("runs") / "sine"
    assert main(["fit", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def sine_fitted(sine_run):
    return load_run(sine_run)


@pytest.fixture(scope="session")
def small_advi_run(tmp_path_factory) -> Path:
    """A quick ADVI fit of a tiny network, for save/reload and CLI tests."""
    out = tmp_path_factory.mktemp("runs") / "advi"
    spec = tmp_path_factory.mktemp("spec") / "tiny.toml"
    spec.write_text(
        (ROOT / "models" / "sine-gap.toml")
        .read_text()
        .replace("hidden = [10, 10]", "hidden = [4]")
        .replace("iterations = 30000", "iterations = 3000")
        .replace("draws = 500", "draws = 200")
    )
    assert main(["fit", str(spec), "--method", "advi", "--out", str(out)]) == 0
    return out
