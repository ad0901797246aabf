"""Per-key token buckets and the ``X-Ratelimit-*`` headers they produce.

Two dimensions use the same bucket rule: ``requests`` (one token per request,
``X-Ratelimit-Limit`` …) and ``duration`` (seconds of media, debited when a task
or sync embedding of known duration is created; ``X-Ratelimit-Duration-Limit`` …,
the names TwelveLabs uses). A debit larger than the whole bucket is allowed once
the bucket is full and leaves it in debt, so one long video is never refused
forever and the long-run rate still holds (the client's ``TokenBucket`` does the same).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from typing import Protocol

import attrs

from ..errors import ErrorCode, RateLimitError
from ._config import RateLimit

__all__ = ["DURATION", "REQUESTS", "Decision", "Limiter", "RateLimiter"]

REQUESTS = "requests"
#: Seconds of media; the header dimension TwelveLabs uses (``x-ratelimit-duration-*``).
DURATION = "duration"


@attrs.frozen
class Decision:
    """One request's verdict; ``reset`` is the UTC epoch second the bucket is full again."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int
    dimension: str = REQUESTS

    @classmethod
    def of(
        cls,
        limit: RateLimit,
        tokens: float,
        allowed: bool,
        *,
        need: float = 1.0,
        dimension: str = REQUESTS,
    ) -> Decision:
        """The verdict for a bucket left holding ``tokens`` after this request, which
        needed ``need`` tokens (``min(cost, capacity)``) to pass."""
        rate = limit.rate
        return cls(
            allowed=allowed,
            limit=limit.requests,
            remaining=max(0, int(tokens)),
            reset=math.ceil(time.time() + (limit.requests - tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((need - tokens) / rate)),
            dimension=dimension,
        )

    def headers(self) -> dict[str, str]:
        prefix = "X-Ratelimit-" if self.dimension == REQUESTS else "X-Ratelimit-Duration-"
        return {
            f"{prefix}Limit": str(self.limit),
            f"{prefix}Remaining": str(self.remaining),
            f"{prefix}Reset": str(self.reset),
        }

    def error(self) -> RateLimitError:
        what = "" if self.dimension == REQUESTS else " seconds of media"
        return RateLimitError(
            f"Too many requests: the limit is {self.limit}{what} per window for this API key. "
            f"Retry after {self.retry_after} s.",
            code=ErrorCode.TOO_MANY_REQUESTS,
            status=429,
            retry_after=self.retry_after,
        )


class Limiter(Protocol):
    """Per-key buckets the middleware asks before each request."""

    @property
    def limit(self) -> RateLimit: ...

    async def acquire(self, owner: str) -> Decision:
        """Take a token from ``owner``'s bucket if it has one; the verdict either way."""
        ...

    async def debit(self, owner: str, cost: float) -> Decision:
        """Take ``cost`` tokens if the bucket holds ``min(cost, capacity)``; ``cost=0``
        only reads the bucket (always allowed)."""
        ...

    async def adjust(self, owner: str, delta: float) -> None:
        """Give back (``delta > 0``, up to the capacity) what a :meth:`debit` took for
        work not done, or charge (``delta < 0``) work measured after the fact, whatever
        the bucket holds."""
        ...


class RateLimiter:
    """Token buckets keyed by API key owner; not thread-safe (the event loop's only).

    A bucket holds up to ``limit.requests`` tokens and gains ``limit.rate`` per
    second; each request takes one. ``Retry-After`` is whole seconds (HTTP's
    form), rounded up, so a client that honours it always finds a token.
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        dimension: str = REQUESTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.dimension = dimension
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # owner -> (tokens, at)

    async def acquire(self, owner: str) -> Decision:
        return self.take(owner)

    async def debit(self, owner: str, cost: float) -> Decision:
        return self.take(owner, cost)

    async def adjust(self, owner: str, delta: float) -> None:
        tokens = self._refilled(owner, self._clock())
        self._buckets[owner] = (min(float(self.limit.requests), tokens + delta), self._clock())

    def _refilled(self, owner: str, now: float) -> float:
        cap = float(self.limit.requests)
        tokens, at = self._buckets.get(owner, (cap, now))
        return min(cap, tokens + (now - at) * self.limit.rate)

    def take(self, owner: str, cost: float = 1.0) -> Decision:
        now = self._clock()
        tokens = self._refilled(owner, now)
        need = min(cost, float(self.limit.requests))
        allowed = tokens >= need
        if allowed:
            tokens -= cost
        self._buckets[owner] = (tokens, now)
        if len(self._buckets) > 10_000:
            self._prune(now)
        return Decision.of(self.limit, tokens, allowed, need=need, dimension=self.dimension)

    def _prune(self, now: float) -> None:
        cap, rate = float(self.limit.requests), self.limit.rate
        for owner, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= cap:
                del self._buckets[owner]
