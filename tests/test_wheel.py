"""A non-editable install works: the wheel carries the built-in specs and templates, and
`pmbnn fit` with no arguments runs from it, far from any checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.helpers import ROOT


def test_a_wheel_installed_in_a_fresh_venv_fits_the_built_in_example(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("pmbnn-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # Its dependencies from this environment (a path entry: this environment's editable pmbnn,
    # installed by a .pth hook there, is not seen); pmbnn itself only from the wheel.
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = os.environ | {"CI": "true"}
    where = subprocess.run(
        [python, "-c", "import pmbnn, sys; print(pmbnn.__file__)"],
        cwd=work, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)), where
    fit = subprocess.run(
        [venv / "bin" / "pmbnn", "fit", "--method", "advi", "--out", "run"],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "run written to run" in fit.stdout
    assert sorted(p.name for p in (work / "run").iterdir()) == [
        "manifest.json", "meta.json", "metrics.json", "spec.toml", "trace.nc"
    ]  # fmt: skip
    listed = subprocess.run(
        [venv / "bin" / "pmbnn", "bench", "uci", "--dataset", "none", "--uci-dir", str(work)],
        cwd=work, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert listed.returncode == 2 and "no dataset 'none'" in listed.stderr  # spec found first
