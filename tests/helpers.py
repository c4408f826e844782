"""What the tests share: paths, the exactly solvable regression, the CLI harness, and the
rule for optional extras. (Fixtures live in conftest.py; tests import helpers from here only.)"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pmbnn.cli import main
from pmbnn.spec import load_builtin_spec

ROOT = Path(__file__).resolve().parent.parent

# Bayesian linear regression with a known posterior: y = X w + b + N(0, NOISE_SD^2).
BLR_ROWS, BLR_NOISE_SD = 40, 0.5
BLR_PROBES = np.array([[0.0, 0.0], [2.0, -2.0], [-3.0, 1.0]])


def require_extra(*modules: str) -> None:
    """Skip the test when an optional extra's module is missing, except where
    PMBNN_REQUIRE_EXTRAS is set (CI sets it, so that a missing extra fails there)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    message = f"needs {', '.join(missing)} (an optional extra)"
    if os.environ.get("PMBNN_REQUIRE_EXTRAS"):
        pytest.fail(f"{message}, and PMBNN_REQUIRE_EXTRAS is set")
    pytest.skip(message)


def exact_posterior(csv, spec) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (w_a, w_b, b) of Bayesian linear regression on the BLR table."""
    frame = pd.read_csv(csv)
    phi = np.c_[frame[["a", "b"]].to_numpy(), np.ones(len(frame))]
    n_features = 2
    w_sd = spec.prior.weight_scale / np.sqrt(n_features)
    prior_var = np.array([w_sd**2, w_sd**2, spec.prior.bias_scale**2])
    precision = phi.T @ phi / BLR_NOISE_SD**2 + np.diag(1 / prior_var)
    cov = np.linalg.inv(precision)
    return cov @ phi.T @ frame["y"].to_numpy() / BLR_NOISE_SD**2, cov


def tiny_spec(factory, name: str, prior: dict | None = None, **inference: object) -> Path:
    """The built-in spec with one hidden layer of 4 units, the given [prior] and [inference]
    values."""
    spec = load_builtin_spec("sine-gap")
    spec = spec.with_overrides(network={"hidden": [4]}, prior=prior or {}, inference=inference)
    path = factory.mktemp("spec") / f"{name}.toml"
    path.write_text(spec.to_toml())
    return path


def fitted_run(factory, name: str, prior: dict | None = None, **inference: object) -> Path:
    out = factory.mktemp("runs") / name
    spec = tiny_spec(factory, name, prior, **inference)
    assert main(["fit", str(spec), "--out", str(out)]) == 0
    return out


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Call the CLI in-process: (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def strict_json(text: str) -> object:
    """Parse JSON as other tools do: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def open_in_chromium(folder: Path, screenshot: Path) -> tuple[list[str], list, int]:
    """(console errors, [alt, loaded, width, height] per image, diagnostics table rows) of the
    page in headless Chromium; a full-page screenshot is written to `screenshot`."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get")
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto((folder / "index.html").resolve().as_uri(), wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
            " i.naturalHeight])"
        )
        rows = page.locator("table#diagnostics tr").count()
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return problems, images, rows
