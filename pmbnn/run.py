"""A run on disk: spec.toml, trace.nc, meta.json, metrics.json and manifest.json. Data only.

A run is written through `files.Destination` (whole or not at all, never over anything pmbnn
did not write) and verifies itself on load: the manifest's checksums catch any changed byte,
and the cross-checks below catch a spec, metadata and trace that do not belong together. A
run that fails either is refused, never predicted from.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from pmbnn import jsontext
from pmbnn.data import Standardizer
from pmbnn.errors import PmbnnError
from pmbnn.evaluation import Metrics
from pmbnn.families import family_of
from pmbnn.files import Destination, OutputKind, write_folder
from pmbnn.fitted import FittedBnn
from pmbnn.locks import lock_path
from pmbnn.manifest import MANIFEST, verify
from pmbnn.model import parameter_shapes
from pmbnn.spec import Spec, read_spec_file
from pmbnn.trace import (
    CONSTANT_DATA,
    INPUTS,
    OBSERVED,
    OBSERVED_DATA,
    POSTERIOR,
    SAMPLE_DIMS,
    TARGET_SCALE,
    group,
)

RUN_FILES = ("spec.toml", "trace.nc", "meta.json", "metrics.json")


def _legacy_run(folder: Path) -> bool:
    """A run written before manifests: exactly the four files, the metadata naming pmbnn."""
    if {p.name for p in folder.iterdir()} != set(RUN_FILES):
        return False
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return "pmbnn" in meta["versions"] and "standardization" in meta
    except (OSError, ValueError, KeyError, TypeError):
        return False


RUN = OutputKind("run", is_ours=_legacy_run)
NETCDF_ENGINE: Literal["h5netcdf"] = "h5netcdf"


def save_run(
    fitted: FittedBnn,
    metrics: Metrics,
    out_dir: str | Path | Destination,
    force: bool = False,
) -> Path:
    """Save a fit as a run folder: plain data files, written whole or not at all.

    Parameters
    ----------
    fitted : FittedBnn
    metrics : Metrics
        What `fit` returned.
    out_dir : path or Destination
        The run folder to create (or a `files.Destination` reserved before fitting).
    force : bool, default False
        Replace out_dir if it is a run pmbnn wrote; anything else is never replaced.

    Returns
    -------
    Path
        The run folder.
    """
    meta = (
        fitted.meta
        | {
            "feature_names": fitted.feature_names,
            "target": fitted.target,
            "standardization": fitted.scaler.to_dict(),
        }
        | ({"classes": fitted.classes} if fitted.classes is not None else {})
    )
    texts = {
        "spec.toml": fitted.spec.to_toml(),
        "meta.json": jsontext.dumps(meta),
        "metrics.json": jsontext.dumps(metrics.to_dict()),
    }
    # Serialized in memory and written as plain bytes: HDF5 writing to a full disk itself
    # ends in a crash of the interpreter; a failed plain write is an ordinary OSError.
    trace_bytes = fitted.trace.to_netcdf(engine=NETCDF_ENGINE)

    def fill(folder: Path) -> None:
        for name, text in texts.items():
            (folder / name).write_text(text)
        (folder / "trace.nc").write_bytes(trace_bytes)

    if isinstance(out_dir, Destination):
        return out_dir.write(fill)
    return write_folder(out_dir, RUN, fill, force)


def data_label(spec: Spec) -> str:
    """A short name for the spec's data: the table's file name, or the built-in example's."""
    return Path(spec.data.path).stem if spec.data.path else spec.data.example or "sine-gap"


def output_title(spec: Spec, spec_argument: str | None, *implied: str) -> str:
    """<data>[-<spec>]: the spec file's name only where it says more than the data's label
    and the words `implied` by the rest of the name (`fit sine-gap` is not sine-gap-sine-gap)."""
    data = data_label(spec)
    name = Path(spec_argument).name.removesuffix(".toml") if spec_argument else None
    return "-".join([data] + ([name] if name and name not in (data, *implied) else []))


def default_run_dir(
    spec: Spec, spec_argument: str | None = None, root: Path = Path("runs")
) -> Path:
    """runs/<data>[-<spec>]-<method>-<time>: named by the data first, so that a spec file
    called nuts.toml still gives a readable name; never an existing folder."""
    method = spec.inference.method
    title = output_title(spec, spec_argument, method, spec.inference.sampler)
    stem = "-".join([title, method, time.strftime("%Y%m%d-%H%M%S")])
    candidate, suffix = root / stem, 1
    while candidate.exists() or lock_path(candidate).exists():  # taken, or being written
        suffix += 1
        candidate = root / f"{stem}-{suffix}"
    return candidate


def load_run(run_dir: str | Path) -> FittedBnn:
    """Load a run folder, verified, as a FittedBnn that predicts exactly what the fit did.

    Parameters
    ----------
    run_dir : path
        A folder written by `save_run` (or ``pmbnn fit``).

    Returns
    -------
    FittedBnn

    Raises
    ------
    PmbnnError
        Naming the file and the problem, when the folder is not a complete run exactly as
        pmbnn wrote it (any changed byte, or parts that do not belong together).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PmbnnError(f"{run_dir} is not a pmbnn run (not a folder); give a folder written "
                         "by 'pmbnn fit'")  # fmt: skip
    if not (run_dir / MANIFEST).is_file():
        legacy = all((run_dir / name).is_file() for name in RUN_FILES)
        raise PmbnnError(
            f"{run_dir} is not a pmbnn run (no {MANIFEST}); "
            + (
                "it was written by a pmbnn from before runs verified themselves: fit it again"
                if legacy
                else "give a folder written by 'pmbnn fit'"
            )
        )
    try:
        verify(run_dir, RUN.name)
    except PmbnnError as exc:
        raise PmbnnError(f"damaged run: {exc}; fit it again (it is not used)") from None
    spec = read_spec_file(run_dir / "spec.toml")
    meta = _read_json(run_dir / "meta.json")
    try:
        with xr.open_datatree(run_dir / "trace.nc", engine=NETCDF_ENGINE) as stored:
            trace = stored.load()
    except Exception as exc:  # any reader error: the file is not the trace pmbnn wrote
        raise PmbnnError(f"damaged run: cannot read {run_dir / 'trace.nc'}: {exc}") from None
    problem = inconsistency(spec, meta, trace)
    if problem:
        raise PmbnnError(f"damaged run: {run_dir}: {problem}; fit it again (it is not used)")
    return FittedBnn(
        spec=spec,
        trace=trace,
        scaler=Standardizer.from_dict(meta["standardization"]),
        feature_names=list(meta["feature_names"]),
        target=meta["target"],
        meta=meta,
        classes=meta.get("classes"),
    )


def inconsistency(spec: Spec, meta: dict, trace: xr.DataTree) -> str | None:
    """What makes spec, metadata and trace not one run (None if they are one)."""
    names = meta.get("feature_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        return "meta.json: feature_names is not a list of column names"
    if not isinstance(meta.get("target"), str):
        return "meta.json: target is not a column name"
    try:
        scaler = Standardizer.from_dict(meta["standardization"])
    except (KeyError, TypeError, ValueError):
        return "meta.json: standardization is incomplete"
    for key, values in (("x_mean", scaler.x_mean), ("x_scale", scaler.x_scale)):
        if values.shape != (len(names),):
            return (
                f"meta.json: standardization.{key} has {values.size} values for "
                f"{len(names)} features"
            )
    scales = np.r_[scaler.x_scale, scaler.y_scale]
    if not (np.isfinite(scaler.x_mean).all() and np.isfinite(scales).all() and (scales > 0).all()):
        return "meta.json: standardization holds a non-finite or non-positive value"
    if meta.get("method") != spec.inference.method or meta.get("seed") != spec.inference.seed:
        return "spec.toml and meta.json disagree on the inference method or seed"
    classes = meta.get("classes")
    if family_of(spec.likelihood).labelled != (classes is not None) or not (
        classes is None or (isinstance(classes, list) and len(set(map(str, classes))) >= 2)
    ):
        return (
            f"meta.json: classes {classes!r} do not fit family = {spec.likelihood.family!r} "
            "in spec.toml"
        )
    for name in (POSTERIOR, CONSTANT_DATA, OBSERVED_DATA):
        if name not in trace.children:
            return f"trace.nc has no {name} group"
    x = group(trace, CONSTANT_DATA).get(INPUTS)
    y = group(trace, OBSERVED_DATA).get(OBSERVED)
    if x is None or y is None or x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        return "trace.nc: the training data groups are malformed"
    if list(map(str, x["feature"].values)) != names:
        return "trace.nc and meta.json disagree on the feature names"
    posterior = group(trace, POSTERIOR)
    expected = parameter_shapes(spec, len(names), classes)
    held = sorted(map(str, posterior.data_vars))
    if set(held) != set(expected):
        return f"trace.nc holds variables {held} where spec.toml's network has {sorted(expected)}"
    for name, shape in expected.items():
        draws = posterior[name]
        if draws.dims[:2] != SAMPLE_DIMS or draws.shape[2:] != shape:
            return (
                f"trace.nc: {name} has shape {draws.shape[2:]}; spec.toml's network needs {shape}"
            )
        if not np.isfinite(draws.values).all():
            return f"trace.nc: {name} holds non-finite draws"
    if spec.likelihood.sigma is not None and scaler.y_scale != 1.0:
        # Before it was stored, a fixed sigma was read in standardized units (the same as the
        # target's when it is not standardized).
        unit = group(trace, CONSTANT_DATA).get(TARGET_SCALE)
        if unit is None or unit.ndim != 0 or float(unit) != scaler.y_scale:
            return (
                f"trace.nc's {TARGET_SCALE} (the unit its fixed sigma was fitted in) is missing "
                "or disagrees with meta.json's standardization"
            )
    return None


def _read_json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PmbnnError(f"damaged run: {path} is not valid JSON") from None
    if not isinstance(content, dict):
        raise PmbnnError(f"damaged run: {path} does not hold a JSON object")
    return content


def load_metrics(run_dir: str | Path) -> dict:
    return _read_json(Path(run_dir) / "metrics.json")
