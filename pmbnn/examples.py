"""Built-in data sets, generated in-process so that nothing is downloaded or shipped."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The sine-gap example: training inputs cover SINE_RANGE except SINE_GAP, where a good
# posterior must be unsure. Tests read these constants to probe inside and outside the gap.
SINE_RANGE = (-4.0, 4.0)
SINE_GAP = (-1.0, 1.0)
SINE_NOISE_SD = 0.1
SINE_ROWS = 120


def sine_gap(seed: int, rows: int = SINE_ROWS) -> pd.DataFrame:
    """Noisy sin(x) on SINE_RANGE with no training inputs inside SINE_GAP."""
    rng = np.random.default_rng([seed, 2026])
    left = rng.uniform(SINE_RANGE[0], SINE_GAP[0], rows // 2)
    right = rng.uniform(SINE_GAP[1], SINE_RANGE[1], rows - rows // 2)
    x = np.concatenate([left, right])
    y = np.sin(x) + SINE_NOISE_SD * rng.normal(size=rows)
    return pd.DataFrame({"x": x, "y": y})


MOONS_ROWS = 1000
MOONS_NOISE = 0.2


def two_moons(seed: int, rows: int = MOONS_ROWS) -> pd.DataFrame:
    """PyMC's BNN example data: scikit-learn's make_moons(noise=0.2) drawn the same way (two
    interleaved half circles, class 0 the upper), without needing scikit-learn."""
    rng = np.random.default_rng([seed, 2027])
    outer, inner = rows // 2, rows - rows // 2
    angle_outer, angle_inner = np.linspace(0, np.pi, outer), np.linspace(0, np.pi, inner)
    x = np.concatenate([np.cos(angle_outer), 1 - np.cos(angle_inner)])
    y = np.concatenate([np.sin(angle_outer), 1 - np.sin(angle_inner) - 0.5])
    points = np.column_stack([x, y]) + MOONS_NOISE * rng.normal(size=(rows, 2))
    label = np.r_[np.zeros(outer, dtype=int), np.ones(inner, dtype=int)]
    order = rng.permutation(rows)
    return pd.DataFrame({"x1": points[order, 0], "x2": points[order, 1], "label": label[order]})


HETERO_ROWS = 300


def hetero_noise_sd(x: np.ndarray) -> np.ndarray:
    """The hetero-sine example's noise sd: 0.05 at x = 0, growing linearly to 0.65 at |x| = 4."""
    return 0.05 + 0.15 * np.abs(x)


def hetero_sine(seed: int, rows: int = HETERO_ROWS) -> pd.DataFrame:
    """sin(x) on [-4, 4] with noise whose sd grows with |x|: one noise sd is wrong everywhere."""
    rng = np.random.default_rng([seed, 2028])
    x = rng.uniform(*SINE_RANGE, rows)
    return pd.DataFrame({"x": x, "y": np.sin(x) + hetero_noise_sd(x) * rng.normal(size=rows)})


OUTLIER_ROWS = 200
OUTLIER_FRACTION = 0.05


def outlier_sine(seed: int, rows: int = OUTLIER_ROWS) -> pd.DataFrame:
    """sin(x) + N(0, 0.1^2) on [-4, 4] where 5% of the targets are gross outliers (shifted by
    3 to 6 in either direction); the column ``outlier`` marks them (not an input)."""
    rng = np.random.default_rng([seed, 2029])
    x = rng.uniform(*SINE_RANGE, rows)
    y = np.sin(x) + SINE_NOISE_SD * rng.normal(size=rows)
    outlier = rng.random(rows) < OUTLIER_FRACTION
    y[outlier] += rng.choice([-1, 1], outlier.sum()) * rng.uniform(3, 6, outlier.sum())
    return pd.DataFrame({"x": x, "y": y, "outlier": outlier.astype(int)})


EXAMPLES = {
    "sine-gap": (sine_gap, "y"),
    "two-moons": (two_moons, "label"),
    "hetero-sine": (hetero_sine, "y"),
    "outlier-sine": (outlier_sine, "y"),
}
