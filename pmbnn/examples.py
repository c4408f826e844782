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


EXAMPLES = {"sine-gap": (sine_gap, "y")}
