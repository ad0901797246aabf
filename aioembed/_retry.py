"""What is worth trying again, and how long to wait first: one rule for both ends.

The client's request retries, its polls (``wait_for_done``, the batch watcher) and
the server's redelivery of tasks all ask these two questions; answering them here
keeps them agreeing. No aiohttp import, so the server can use it without pulling in
the client.
"""

from __future__ import annotations

import random

import attrs

from .errors import ErrorCode, RateLimitError, ServerError, TaskFailedError, TransportError

__all__ = ["TRANSIENT_TASK_ERRORS", "Backoff", "is_transient"]

#: Task failure codes that say nothing about the video (the server or a worker failed):
#: running the task again may well succeed.
TRANSIENT_TASK_ERRORS = frozenset(
    {ErrorCode.WORKER_CRASHED, ErrorCode.PROCESSING_TIMEOUT, ErrorCode.INTERNAL_ERROR}
)


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later may succeed where ``exc`` failed.

    True for a request that got no usable answer (:class:`TransportError`, timeouts
    included), a 5xx, a 429, and a task that failed for the server's reasons
    (:data:`TRANSIENT_TASK_ERRORS`). False for everything else: a 4xx, a broken
    video, a malformed answer, misuse. Whether a *particular* request may be sent
    again (it must be idempotent) is the caller's question, not this one.
    """
    if isinstance(exc, (TransportError, ServerError, RateLimitError)):
        return True
    if isinstance(exc, TaskFailedError):
        code = getattr(exc.error, "code", None)
        return code in TRANSIENT_TASK_ERRORS
    return False


@attrs.frozen
class Backoff:
    """Delays that grow by ``factor`` per attempt from ``initial`` up to ``maximum`` seconds.

    ``jitter`` is the random share of each delay: the delay is drawn from
    ``[(1 - jitter) * d, d]``. ``1.0`` ("full jitter") spreads a crowd of clients
    retrying after the same failure; a small value keeps a poll near its interval
    while still keeping many pollers out of lockstep.
    """

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError("backoff delays must be positive")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff factor must be >= 1 and jitter within 0-1")

    def base(self, attempt: int) -> float:
        """The delay before jitter for ``attempt`` (1-based): no randomness, for tests and logs."""
        exponent = max(0, attempt - 1)
        # Past ~1000 doublings float overflows; the cap is reached long before.
        if exponent > 1000:
            return max(self.maximum, self.initial)
        return min(max(self.maximum, self.initial), self.initial * self.factor**exponent)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before ``attempt`` (1-based).

        A server's ``retry_after`` wins (capped at ``maximum``), with up to
        ``initial`` seconds of jitter on top so a crowd told the same time does not
        return in lockstep.
        """
        if retry_after is not None:
            return min(max(0.0, retry_after), self.maximum) + random.uniform(0, self.initial)
        d = self.base(attempt)
        return random.uniform((1 - self.jitter) * d, d)
