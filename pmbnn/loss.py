"""Has an optimizer's loss stopped improving? The statistic ADVI stops on and diagnose checks.

One definition, so that the stop rule and the check after it cannot disagree.
"""

from __future__ import annotations

import numpy as np

PLATEAU_Z = 2.0  # improvement below this many standard errors is within the ELBO's noise


def plateau_z(losses: np.ndarray, window: int) -> float:
    """How much the last window's mean loss improved on the window before, in standard errors.

    Below PLATEAU_Z the drop is within ELBO noise: the loss has stopped improving.
    """
    last, previous = losses[-window:], losses[-2 * window : -window]
    noise = np.sqrt((last.var() + previous.var()) / window)
    improvement = previous.mean() - last.mean()
    if noise == 0:
        return np.inf if improvement > 0 else 0.0
    return float(improvement / noise)
