"""The likelihood families on the examples built for them, against the wrong family.

    python benchmarks/families.py          # about 10 minutes on 2 cores

- two-moons (`models/two-moons.toml`, Bernoulli, PyMC's BNN example): NUTS and mean-field
  ADVI (30,000 iterations, as PyMC's example); test accuracy, log loss, ECE; the mutual
  information (epistemic uncertainty) far from the data (a ring of radius 4 around the data's
  centre) against on it (the test rows), as a ratio.
- hetero-sine (noise sd 0.05 + 0.15 |x|): `gaussian` against `heteroscedastic_gaussian`, NUTS;
  coverage of the 90% interval on 4,000 fresh rows of the same generator, separately where
  |x| < 2 (low noise) and |x| >= 2 (high noise).
- outlier-sine (5% gross outliers): `gaussian` against `student_t`, NUTS; RMSE of the
  predictive mean on the clean rows of 4,000 fresh rows, and against sin(x) itself.

Writes reports/benchmarks/families.json (numbers, date, machine) and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pmbnn.examples import hetero_sine, outlier_sine  # noqa: E402
from pmbnn.pipeline import fit  # noqa: E402
from pmbnn.spec import load_builtin_spec  # noqa: E402

OUT = ROOT / "reports" / "benchmarks" / "families.json"
FRESH_ROWS = 4000
FRESH_SEED = 12345  # fresh rows: another seed than the fit's data
FAR_RADIUS = 4.0


def two_moons() -> dict:
    results = {}
    for method, overrides in [("nuts", {}), ("advi", {"method": "advi", "iterations": 30000})]:
        spec = load_builtin_spec("two-moons").with_overrides(inference=overrides)
        started = time.perf_counter()
        fitted, metrics = fit(spec)
        seconds = time.perf_counter() - started
        x_test, _ = fitted.test_data()
        centre = x_test.mean(axis=0)
        angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
        far = centre + FAR_RADIUS * np.column_stack([np.cos(angles), np.sin(angles)])
        on_data = fitted.predict(x_test).mutual_information.mean()
        far_away = fitted.predict(far).mutual_information.mean()
        test = metrics.test
        results[method] = {
            "test_accuracy": test.accuracy,
            "test_log_loss": test.log_loss,
            "test_ece": test.ece,
            "test_brier": test.brier,
            "mutual_information_on_test_rows": float(on_data),
            "mutual_information_far": float(far_away),
            "mutual_information_ratio_far_vs_data": float(far_away / on_data),
            "seconds": round(seconds, 1),
        }
    return results


def coverage_by_noise() -> dict:
    fresh = hetero_sine(FRESH_SEED, FRESH_ROWS)
    x, y = fresh[["x"]].to_numpy(), fresh["y"].to_numpy()
    quiet = np.abs(x[:, 0]) < 2
    results = {}
    for family in ("gaussian", "heteroscedastic_gaussian"):
        spec = load_builtin_spec("hetero-sine").with_overrides(likelihood={"family": family})
        fitted, metrics = fit(spec)
        prediction = fitted.predict(x, levels=(0.05, 0.95))
        inside = (y >= prediction.quantiles[0.05]) & (y <= prediction.quantiles[0.95])
        results[family] = {
            "coverage_90_low_noise": float(inside[quiet].mean()),
            "coverage_90_high_noise": float(inside[~quiet].mean()),
            "test_lpd": metrics.test.lpd,
            "fresh_lpd": float(fitted.log_predictive_density(x, y).mean()),
        }
    return results


def robustness_to_outliers() -> dict:
    fresh = outlier_sine(FRESH_SEED, FRESH_ROWS)
    clean = fresh["outlier"].to_numpy() == 0
    x, y = fresh[["x"]].to_numpy()[clean], fresh["y"].to_numpy()[clean]
    results = {}
    for family in ("gaussian", "student_t"):
        spec = load_builtin_spec("outlier-sine").with_overrides(likelihood={"family": family})
        fitted, _ = fit(spec)
        mean = fitted.predict(x).mean
        results[family] = {
            "rmse_clean_rows": float(np.sqrt(np.mean((mean - y) ** 2))),
            "rmse_against_sin": float(np.sqrt(np.mean((mean - np.sin(x[:, 0])) ** 2))),
        }
        if family == "student_t":
            nu = fitted.posterior["nu"]
            results[family]["nu_posterior_median"] = float(nu.median())
    return results


def main() -> None:
    started = time.perf_counter()
    numbers = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "two_moons": two_moons(),
        "hetero_sine": coverage_by_noise(),
        "outlier_sine": robustness_to_outliers(),
    }
    numbers["seconds"] = round(time.perf_counter() - started, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
