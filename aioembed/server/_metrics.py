"""[ext] Request counts by route, method and status since start.

Tests and benchmarks read them (``GET /v1.3/metrics`` or the app's
``REQUEST_COUNTER`` key) to assert from the server side how many requests a
client really made.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

__all__ = ["UNMATCHED", "RequestCounter"]

#: The route name used for requests that matched no route.
UNMATCHED = "<unmatched>"


class RequestCounter:
    """Counts finished requests; a request is counted once its response is ready."""

    def __init__(self) -> None:
        self.started = time.time()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, route: str, method: str, status: int) -> None:
        self._counts[(route, method, status)] += 1

    def count(
        self, route: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """Requests matching every given filter; ``route`` is a path template such
        as ``/v1.3/embed/tasks/{task_id}/status``."""
        return sum(
            n
            for (r, m, s), n in self._counts.items()
            if (route is None or r == route)
            and (method is None or m == method.upper())
            and (status is None or s == status)
        )

    def total(self) -> int:
        return sum(self._counts.values())

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"route": r, "method": m, "status": s, "count": n}
            for (r, m, s), n in sorted(self._counts.items())
        ]
