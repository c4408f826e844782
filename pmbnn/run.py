"""A run on disk: spec.toml, trace.nc, meta.json, metrics.json. Plain data files only.

Runs are written to a hidden temporary folder beside the target and renamed into place only
when complete, so an interrupted or failed fit leaves nothing half-written, and an existing run
is replaced only when the caller says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from pmbnn.data import Standardizer
from pmbnn.errors import PmbnnError
from pmbnn.files import write_folder
from pmbnn.fitted import FittedBnn
from pmbnn.spec import load_spec

RUN_FILES = ("spec.toml", "trace.nc", "meta.json", "metrics.json")
NETCDF_ENGINE = "h5netcdf"


def save_run(fitted: FittedBnn, metrics: dict, out_dir: str | Path, force: bool = False) -> Path:
    """Write the run atomically; returns its folder."""

    def fill(folder: Path) -> None:
        (folder / "spec.toml").write_text(fitted.spec.to_toml())
        fitted.trace.to_netcdf(folder / "trace.nc", engine=NETCDF_ENGINE)
        meta = fitted.meta | {
            "feature_names": fitted.feature_names,
            "target": fitted.target,
            "standardization": fitted.scaler.to_dict(),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    return write_folder(out_dir, fill, force)


def load_run(run_dir: str | Path) -> FittedBnn:
    """A saved run as a FittedBnn that predicts exactly what the original did."""
    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if not run_dir.is_dir() or missing:
        what = "not a folder" if not run_dir.is_dir() else f"missing {', '.join(missing)}"
        raise PmbnnError(
            f"{run_dir} is not a pmbnn run ({what}); give a folder written by 'pmbnn fit'"
        )
    meta = json.loads((run_dir / "meta.json").read_text())
    with xr.open_datatree(run_dir / "trace.nc", engine=NETCDF_ENGINE) as stored:
        trace = stored.load()
    return FittedBnn(
        spec=load_spec(run_dir / "spec.toml"),
        trace=trace,
        scaler=Standardizer.from_dict(meta["standardization"]),
        feature_names=list(meta["feature_names"]),
        target=meta["target"],
        meta=meta,
    )


def load_metrics(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())
