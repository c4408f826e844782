"""Strict JSON out: what every JSON file and ``--json`` output of pmbnn is written with.

Python's json writes NaN and Infinity, which are not JSON: other tools reject the file. Here a
number that is not finite is either a statistic that could not be computed (written as null,
where the caller says so) or an error.
"""

from __future__ import annotations

import json
import math

import numpy as np


def _plain(value: object, null_for_non_finite: bool) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v, null_for_non_finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, null_for_non_finite) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), null_for_non_finite)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value) and null_for_non_finite:
        return None
    return value


def dumps(value: object, null_for_non_finite: bool = False) -> str:
    """Indented strict JSON with a final newline; ValueError on a non-finite number unless
    null_for_non_finite (then it is written as null)."""
    return json.dumps(_plain(value, null_for_non_finite), indent=2, allow_nan=False) + "\n"
