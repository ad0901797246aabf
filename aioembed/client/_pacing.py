"""A batch's rate budget: token buckets for requests and media minutes, so it paces
itself instead of running into 429s.

The service limits a key by requests per window and (TwelveLabs) by media
duration per window. A bucket per dimension mirrors the server's own (ours:
``server/_ratelimit.py``): it holds up to ``burst`` tokens and refills evenly at
the budget's rate, so a batch that takes a token before every request never
finds the server's bucket empty, wherever the window boundaries fall. Requests
reach the server a varying moment after they leave, so the client runs at
:data:`RATE_MARGIN` of the rate and keeps one token of a burst in hand: a
request delayed on the way then still finds the server's token (the media bucket
keeps :data:`MEDIA_JITTER_SECONDS` of refill: media is debited after the upload and
probe, whose time varies more). A bucket starts
from what the server last reported (``client.rate_limits``), so traffic made
just before the batch counts. Waiters are served in arrival order.

Media is charged before a create, by the duration the file's header gives
(:mod:`._duration`; the item's offsets clip it). When the header says nothing (a
URL, Matroska), the mean of the durations seen so far is charged (60 s before
any), and the batch trues the charge up with the duration the server reports
for the finished task.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import attrs

from .._ratelimits import RateLimits, RateLimitWindow

__all__ = ["Pacer", "RateBudget", "TokenBucket"]

#: Seconds charged for a media whose duration is unknown, before any is known.
DEFAULT_MEDIA_SECONDS = 60.0
#: The share of a budget's rate the client spends (room for network jitter).
RATE_MARGIN = 0.95
#: Seconds of refill the media bucket keeps in hand. The server debits media after a
#: create's upload and probe, whose time varies by a second or more on a loaded host,
#: so two creates sent apart can be debited close together.
MEDIA_JITTER_SECONDS = 1.0


def _positive(_: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class RateBudget:
    """What ``embed_many`` may spend: ``requests_per_minute`` (every request the batch
    sends) and ``media_minutes_per_hour`` (the media its creates submit); ``None`` leaves
    a dimension unpaced.

    A full budget may be spent at once, then at its rate, as the server's limiter
    allows (a burst of N, then N per window). ``request_burst`` and
    ``media_burst_minutes`` set a smaller burst when the server allows less.
    """

    requests_per_minute: float | None = attrs.field(default=None, validator=_positive)
    media_minutes_per_hour: float | None = attrs.field(default=None, validator=_positive)
    request_burst: float | None = attrs.field(default=None, validator=_positive)
    media_burst_minutes: float | None = attrs.field(default=None, validator=_positive)


class TokenBucket:
    """Up to ``capacity`` tokens, ``rate`` more per second; :meth:`take` waits its turn.

    A take larger than the capacity waits for a full bucket and leaves it in debt,
    so one long video is never refused and the long-run rate still holds.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        tokens: float | None = None,
        reserve: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        #: Tokens never spent (a margin against the server's count).
        self.reserve = min(reserve, capacity / 2)
        self._clock = clock
        self._tokens = capacity if tokens is None else min(tokens, capacity)
        self._at = clock()
        self._turn = anyio.Lock()

    @property
    def tokens(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    async def take(self, amount: float = 1.0) -> None:
        async with self._turn:  # first come, first served
            need = min(amount, self.capacity - self.reserve) + self.reserve
            while (available := self.tokens) < need:
                await anyio.sleep((need - available) / self.rate)
            self._tokens -= amount

    def adjust(self, amount: float) -> None:
        """Give back (positive) or charge (negative) tokens after the fact."""
        self._tokens = min(self.capacity, self.tokens + amount)


def _bucket(
    per_second: float | None,
    burst: float,
    seen: RateLimitWindow | None,
    seen_at: float,
    *,
    jitter: float = 0.0,
) -> TokenBucket | None:
    if per_second is None:
        return None
    tokens = None
    if seen is not None and seen.remaining is not None:
        # The server's count as it last reported it, refilled since then at our rate.
        tokens = seen.remaining + max(0.0, time.time() - seen_at) * per_second
    reserve = max(1.0, per_second * jitter) if burst >= 2 else 0.0
    return TokenBucket(per_second * RATE_MARGIN, burst, tokens=tokens, reserve=reserve)


class Pacer:
    """The batch's buckets: :meth:`request` before each request, :meth:`media` before
    each create. Without a budget both return at once."""

    def __init__(self, budget: RateBudget | None = None, seen: RateLimits | None = None) -> None:
        b = budget or RateBudget()
        at = seen.seen_at if seen is not None else 0.0
        rpm, mph = b.requests_per_minute, b.media_minutes_per_hour
        self.requests = _bucket(
            None if rpm is None else rpm / 60.0,
            b.request_burst or rpm or 0.0,
            seen.requests if seen is not None else None,
            at,
        )
        # Media in seconds (the unit of TwelveLabs' x-ratelimit-duration-*).
        self.media_seconds = _bucket(
            None if mph is None else mph / 60.0,
            (b.media_burst_minutes or mph or 0.0) * 60.0,
            seen.duration if seen is not None else None,
            at,
            jitter=MEDIA_JITTER_SECONDS,
        )
        self._known = (0.0, 0)  # sum and count of the durations the server reported

    async def request(self) -> None:
        if self.requests is not None:
            await self.requests.take()

    @property
    def paces_media(self) -> bool:
        return self.media_seconds is not None

    def estimate(self) -> float:
        """Seconds to charge for a media of unknown duration."""
        total, count = self._known
        return total / count if count else DEFAULT_MEDIA_SECONDS

    async def media(self, seconds: float) -> None:
        if self.media_seconds is not None:
            await self.media_seconds.take(seconds)

    def settle(self, charged: float, actual: float | None) -> None:
        """The server's duration for a finished item: correct what was charged for it."""
        if actual is None:
            return
        total, count = self._known
        self._known = (total + actual, count + 1)
        if self.media_seconds is not None:
            self.media_seconds.adjust(charged - actual)
