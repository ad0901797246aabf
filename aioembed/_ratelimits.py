"""``X-Ratelimit-*`` headers as a typed value, for errors and the client's "last seen limits".

TwelveLabs reports a limit per dimension: requests (``x-ratelimit-limit``,
``-remaining``, ``-used``, ``-reset``) and others such as media duration
(``x-ratelimit-duration-limit``, ``x-ratelimit-duration-remaining``, ...). The
dimension is whatever sits between ``x-ratelimit-`` and the field name; none
means ``requests``. Unknown fields and values that are not numbers are skipped,
so a new header never breaks a client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import attrs

__all__ = ["RateLimitWindow", "RateLimits"]

_PREFIX = "x-ratelimit-"
_FIELDS = ("limit", "remaining", "used", "reset")


@attrs.frozen
class RateLimitWindow:
    """One dimension's budget as the server last reported it (units are the server's:
    requests, or seconds of media for ``duration``). ``reset`` is as sent (our server:
    the UTC epoch second the budget is full again)."""

    limit: float | None = None
    remaining: float | None = None
    used: float | None = None
    reset: float | None = None


@attrs.frozen
class RateLimits:
    """Every dimension a response reported, and when (``time.time()``) it was seen."""

    windows: Mapping[str, RateLimitWindow]
    seen_at: float

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits | None:
        """Parse ``X-Ratelimit-*`` headers (any case); ``None`` when there are none."""
        found: dict[str, dict[str, float]] = {}
        for name, value in headers.items():
            key = name.lower()
            if not key.startswith(_PREFIX):
                continue
            rest = key[len(_PREFIX) :]
            dimension, _, field = rest.rpartition("-")
            if field not in _FIELDS:
                continue
            try:
                number = float(value)
            except ValueError:
                continue
            found.setdefault(dimension or "requests", {})[field] = number
        if not found:
            return None
        windows = {dim: RateLimitWindow(**fields) for dim, fields in found.items()}
        return cls(windows, time.time())

    def __getitem__(self, dimension: str) -> RateLimitWindow:
        return self.windows[dimension]

    @property
    def requests(self) -> RateLimitWindow | None:
        return self.windows.get("requests")

    @property
    def duration(self) -> RateLimitWindow | None:
        """Media duration budget (``x-ratelimit-duration-*``), when the server sends one."""
        return self.windows.get("duration")
