"""[ext] Request counts by key, route, method and status since start.

Tests and benchmarks read them (``GET /v1.3/metrics`` or the app's ``METRICS``
key) to assert from the server side how many requests a client really made.
Counts are kept per API key owner so ``/metrics`` can show each key its own
requests only; requests that never authenticated (a ``401``) belong to no key.
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
        self._counts: Counter[tuple[str | None, str, str, int]] = Counter()

    def record(self, route: str, method: str, status: int, *, owner: str | None = None) -> None:
        """One request; ``owner`` is the authenticated key's owner hash, if any."""
        self._counts[(owner, route, method, status)] += 1

    def count(
        self,
        route: str | None = None,
        method: str | None = None,
        status: int | None = None,
        *,
        owner: str | None = None,
    ) -> int:
        """Requests matching every given filter (all keys when ``owner`` is None);
        ``route`` is a path template such as ``/v1.3/embed/tasks/{task_id}/status``."""
        return sum(
            n
            for (o, r, m, s), n in self._counts.items()
            if (owner is None or o == owner)
            and (route is None or r == route)
            and (method is None or m == method.upper())
            and (status is None or s == status)
        )

    def total(self, *, owner: str | None = None) -> int:
        return self.count(owner=owner)

    def snapshot(self, *, owner: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``route``, ``method``, ``status``, ``count``: one key's requests, or
        with ``owner`` None every request (keys merged)."""
        merged: Counter[tuple[str, str, int]] = Counter()
        for (o, r, m, s), n in self._counts.items():
            if owner is None or o == owner:
                merged[(r, m, s)] += n
        return [
            {"route": r, "method": m, "status": s, "count": n}
            for (r, m, s), n in sorted(merged.items())
        ]
