"""Per-key token buckets and the ``X-Ratelimit-*`` headers they produce."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from typing import Protocol

import attrs

from ..errors import ErrorCode, RateLimitError
from ._config import RateLimit

__all__ = ["Decision", "Limiter", "RateLimiter"]


@attrs.frozen
class Decision:
    """One request's verdict; ``reset`` is the UTC epoch second the bucket is full again."""

    allowed: bool
    limit: int
    remaining: int
    reset: int
    retry_after: int

    @classmethod
    def of(cls, limit: RateLimit, tokens: float, allowed: bool) -> Decision:
        """The verdict for a bucket left holding ``tokens`` after this request."""
        rate = limit.rate
        return cls(
            allowed=allowed,
            limit=limit.requests,
            remaining=int(tokens),
            reset=math.ceil(time.time() + (limit.requests - tokens) / rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / rate)),
        )

    def headers(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(self.remaining),
            "X-Ratelimit-Reset": str(self.reset),
        }

    def error(self) -> RateLimitError:
        return RateLimitError(
            f"Too many requests: the limit is {self.limit} per window for this API key. "
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


class RateLimiter:
    """Token buckets keyed by API key owner; not thread-safe (the event loop's only).

    A bucket holds up to ``limit.requests`` tokens and gains ``limit.rate`` per
    second; each request takes one. ``Retry-After`` is whole seconds (HTTP's
    form), rounded up, so a client that honours it always finds a token.
    """

    def __init__(self, limit: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # owner -> (tokens, at)

    async def acquire(self, owner: str) -> Decision:
        return self.take(owner)

    def take(self, owner: str) -> Decision:
        now = self._clock()
        cap, rate = float(self.limit.requests), self.limit.rate
        tokens, at = self._buckets.get(owner, (cap, now))
        tokens = min(cap, tokens + (now - at) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[owner] = (tokens, now)
        if len(self._buckets) > 10_000:
            self._prune(now)
        return Decision.of(self.limit, tokens, allowed)

    def _prune(self, now: float) -> None:
        cap, rate = float(self.limit.requests), self.limit.rate
        for owner, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= cap:
                del self._buckets[owner]
