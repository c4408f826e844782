"""When and where a benchmark ran: the date and machine every result file records."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime


def provenance() -> dict:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
