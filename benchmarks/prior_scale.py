"""Which weight prior reaches the data? The prior predictive on every UCI dataset, per prior.

    python benchmarks/prior_scale.py --uci-dir ../shared/data/uci   # about a minute

For split 0 of each dataset (standardized on its training rows, the network of the built-in
spec `uci-1x50`), 500 draws of the network output f from each candidate prior: the fixed
fan-in prior (weight sd 1 / sqrt(fan-in)), the 2x wide one, and the learned per-layer scale
with a HalfNormal hyperprior of scale 1, 2 and 3. Per prior and dataset: the 5%, 50% and 95%
points over draws of f's sd across the training inputs, and the share of draws below the
observed sd of y. A prior whose draws are nearly all flatter than the data (share near 1)
starts out unable to reach the data's variation. This is the measurement behind the default
hyperprior scale (2). Writes reports/benchmarks/prior_predictive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pmbnn.data import Dataset, Standardizer  # noqa: E402
from pmbnn.prior_check import prior_predictive_on_rows  # noqa: E402
from pmbnn.spec import load_builtin_spec  # noqa: E402
from pmbnn.uci import load_uci, split_rows  # noqa: E402

DATASETS = ("bostonHousing", "concrete", "energy", "kin8nm", "naval-propulsion-plant",
            "wine-quality-red", "yacht")  # fmt: skip
PRIORS = {
    "fixed, sd 1 / sqrt(fan-in)": {"kind": "fixed", "weight_scale": 1.0},
    "fixed, sd 2 / sqrt(fan-in)": {"kind": "fixed", "weight_scale": 2.0},
    "learned, HalfNormal(1)": {"kind": "hierarchical", "scale_prior_scale": 1.0},
    "learned, HalfNormal(2)": {"kind": "hierarchical", "scale_prior_scale": 2.0},
    "learned, HalfNormal(3)": {"kind": "hierarchical", "scale_prior_scale": 3.0},
}
DRAWS = 500


def measure(uci_dir: Path) -> dict:
    base = load_builtin_spec("uci-1x50")
    results: dict[str, dict] = {}
    for dataset in DATASETS:
        data = load_uci(uci_dir, dataset)
        train, _ = split_rows(uci_dir, dataset, 0)
        rows = Dataset(data.x[train], data.y[train], data.feature_names, data.target, dataset)
        scaler = Standardizer.fit(rows.x, rows.y, enabled=True)
        results[dataset] = {}
        for label, prior in PRIORS.items():
            spec = base.with_overrides(prior=prior)
            summary = prior_predictive_on_rows(spec, rows, scaler, DRAWS).summary()["sd"]
            results[dataset][label] = {"observed_sd": summary["observed"]} | summary["prior f"]
            print(f"{dataset:>24}  {label:<28} f sd 5-95%: {summary['prior f']['q05']:.3g} - "
                  f"{summary['prior f']['q95']:.3g}, observed {summary['observed']:.3g}, "
                  f"{summary['prior f']['below_observed']:.0%} of draws below")  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uci-dir", type=Path, default=os.environ.get("PMBNN_UCI_DIR"))
    args = parser.parse_args()
    if args.uci_dir is None:
        parser.error("give --uci-dir (or set PMBNN_UCI_DIR)")
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "draws": DRAWS,
        "split": 0,
        "results": measure(args.uci_dir),
    }
    out = ROOT / "reports" / "benchmarks" / "prior_predictive.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
