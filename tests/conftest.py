"""Shared, session-scoped fits: each PyTensor graph compiles once for the whole suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pmbnn.cli import main
from pmbnn.cores import usable_cores
from pmbnn.run import load_run
from pmbnn.spec import Spec
from tests.helpers import BLR_NOISE_SD, BLR_ROWS, fitted_run


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one test process per core this process may use (psutil's count of physical
    cores can be the host's, not the container's)."""
    return usable_cores()


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
        prior={"kind": "fixed"},
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
    """A quick ADVI fit of a tiny network, for save/reload, CLI and report tests; with an ARD
    prior, so that those paths meet learned layer and feature scales."""
    return fitted_run(
        tmp_path_factory, "advi", {"kind": "ard"}, method="advi", iterations=3000, draws=200
    )


@pytest.fixture(scope="session")
def short_nuts_run(tmp_path_factory) -> Path:
    """Deliberately bad: NUTS with a handful of tuning steps and draws."""
    return fitted_run(tmp_path_factory, "short-nuts", method="nuts", tune=15, draws=15)


@pytest.fixture(scope="session")
def short_advi_run(tmp_path_factory) -> Path:
    """Deliberately bad: ADVI stopped after a few hundred iterations."""
    return fitted_run(tmp_path_factory, "short-advi", method="advi", iterations=300, draws=200)
