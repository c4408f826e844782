"""What safe saving and verified loading cost, against plain xarray reading and writing.

    python benchmarks/run_io.py     # a run of 2 chains x 1000 draws (38 MB); 6 s here

The run is the perf workload's network (8 inputs, 2 x 32 tanh, 1378 parameters) with posterior
draws filled in from a seed (inference is not what is measured), 1000 training rows, and the
pointwise log-likelihood a real run stores. `save_run` (reserve the output, serialize in
memory, write, fsync, checksum into the manifest, rename into place) is timed against writing
the same trace and files with plain xarray / json calls; `load_run` (manifest checksums,
cross-checks, read) against plain `xr.open_datatree(...).load()`. Medians of 5. Writes
reports/benchmarks/run_io.json with the figures and the named ratios.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf import HIDDEN, N_FEATURES, N_ROWS, make_data  # noqa: E402
from provenance import provenance  # noqa: E402

CHAINS, DRAWS, REPEATS = 2, 1000, 5


def synthetic_run():
    """A FittedBnn with seeded draws of the right shapes, and its metrics."""
    from xarray import DataTree

    from pmbnn.data import Standardizer
    from pmbnn.fitted import FittedBnn
    from pmbnn.model import build_model, parameter_shapes
    from pmbnn.pipeline import attach_evaluation_data, run_meta
    from pmbnn.spec import Spec

    spec = Spec().with_overrides(
        network={"hidden": HIDDEN}, inference={"chains": CHAINS, "draws": DRAWS}
    )
    x, y = make_data(N_ROWS)
    names = [f"x{i}" for i in range(N_FEATURES)]
    scaler = Standardizer.fit(x, y, True)
    bnn = build_model(spec, scaler.x(x), scaler.y(y), names, target_scale=scaler.y_scale)
    rng = np.random.default_rng(0)
    posterior = {}
    for name, shape in parameter_shapes(spec, N_FEATURES).items():
        values = rng.normal(size=(CHAINS, DRAWS, *shape)) * 0.3
        posterior[name] = np.abs(values) + 0.1 if name == "sigma" else values
    trace = DataTree.from_dict(
        {
            "posterior": xr.Dataset(
                coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS)},
                data_vars={
                    name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(v.ndim - 2)]), v)
                    for name, v in posterior.items()
                },
            ),
            "constant_data": xr.Dataset(
                {"X": (("obs", "feature"), scaler.x(x))}, coords={"feature": names}
            ),
            "observed_data": xr.Dataset({"y": ("obs", scaler.y(y))}),
        }
    )
    fitted = FittedBnn(spec, trace, scaler, names, "y")
    fitted.__dict__["model"] = bnn
    attach_evaluation_data(fitted, x[:100], y[:100])

    class Data:  # what run_meta reads
        source, fingerprint, target, feature_names = "benchmark", "0" * 64, "y", names

    Data.y = y
    fitted.meta = run_meta(spec, Data, np.arange(N_ROWS), np.arange(0), scaler, {"inference_s": 0})
    return fitted, {"n_train": N_ROWS, "n_test": 0, "train_rmse": 1.0}


def median_seconds(call, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    from pmbnn import jsontext
    from pmbnn.manifest import verify
    from pmbnn.run import load_run, save_run

    fitted, metrics = synthetic_run()
    work = Path(tempfile.mkdtemp(prefix="pmbnn-run-io-", dir=ROOT / "reports"))
    try:
        run = work / "run"

        def safe_save() -> None:
            save_run(fitted, metrics, run, force=True)

        def plain_save() -> None:
            plain = work / "plain"
            shutil.rmtree(plain, ignore_errors=True)
            plain.mkdir()
            fitted.trace.to_netcdf(plain / "trace.nc", engine="h5netcdf")
            (plain / "spec.toml").write_text(fitted.spec.to_toml())
            (plain / "meta.json").write_text(json.dumps(fitted.meta))
            (plain / "metrics.json").write_text(json.dumps(metrics))

        results = {"save_s": median_seconds(safe_save), "plain_save_s": median_seconds(plain_save)}
        results["load_s"] = median_seconds(lambda: load_run(run))
        results["verify_s"] = median_seconds(lambda: verify(run, "run"))
        results["plain_load_s"] = median_seconds(
            lambda: xr.open_datatree(work / "plain" / "trace.nc", engine="h5netcdf").load()
        )
        results["trace_mb"] = (run / "trace.nc").stat().st_size / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratios = {
        "save_ratio_vs_plain_write": results["save_s"] / results["plain_save_s"],
        "load_ratio_vs_plain_read": results["load_s"] / results["plain_load_s"],
    }
    record = provenance() | {
        "run": {"chains": CHAINS, "draws": DRAWS, "rows": N_ROWS, "hidden": HIDDEN},
        "results": results,
        "ratios": ratios,
    }
    for key, value in results.items():
        print(f"  {key:<14} {value:8.3f}")
    for key, value in ratios.items():
        print(f"  {key:<28} {value:6.2f}")
    out = ROOT / "reports" / "benchmarks" / "run_io.json"
    out.write_text(jsontext.dumps(record))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
