"""How many cores this process may run on: what every parallel part of pmbnn sizes itself by."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores the scheduler lets this process use (its CPU affinity), not the machine's:
    in a container or under `taskset`, ``os.cpu_count()`` counts the host's and oversubscribes."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
