"""Client settings as frozen values: pass them in, never mutate them, never read globals."""

from __future__ import annotations

import attrs

from .._params import MAX_UPLOAD_BYTES
from .._retry import Backoff

__all__ = ["Limits", "RetryPolicy", "Timeouts"]


@attrs.frozen
class Timeouts:
    """Seconds; ``None`` disables that limit.

    ``request`` bounds a whole non-upload request. Uploads are bounded by
    ``upload`` (none by default: a 2 GB file on a slow link takes what it takes)
    while ``read`` still catches a server that stops answering mid-way.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    request: float | None = 120.0
    upload: float | None = None


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts *and* a time budget.

    Transport errors, 429 and 5xx are retried; ``Retry-After`` is honoured (up to
    ``max_delay``). A 429 counts against ``budget`` only, not ``attempts``: being
    told to wait is not a failure (``attempts=1`` still means no retry at all).
    ``create`` is retried only when it carries an idempotency key (sent by
    default, see ``idempotency_keys``) or the connection was never made.
    """

    attempts: int = 5
    initial_delay: float = 0.25
    max_delay: float = 20.0
    budget: float = 120.0
    idempotency_keys: bool = True

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry number ``attempt`` (1-based), full jitter; see :class:`Backoff`."""
        return Backoff(self.initial_delay, self.max_delay).delay(attempt, retry_after)


NO_RETRY = RetryPolicy(attempts=1)


@attrs.frozen
class Limits:
    """Client-wide concurrency bounds, so gathering 1,000 calls stays polite.

    ``max_connections`` caps sockets, ``max_requests`` in-flight requests and
    ``max_uploads`` files open and streaming at once. ``max_upload_bytes``
    mirrors the service's 2 GB cap so an oversize file fails before it is sent.
    ``max_response_bytes`` caps a successful answer's body (the largest results,
    a 2-hour video in 2 s clips with every option, are ~100 MB of JSON); error
    bodies are capped at :data:`MAX_ERROR_BODY` whatever this says. Past either,
    :class:`~aioembed.ResponseTooLargeError`.
    """

    max_connections: int = 32
    max_requests: int = 32
    max_uploads: int = 4
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_response_bytes: int = 512 * 1024**2


#: Bytes of an error answer read at most: a contract error body is a few hundred.
MAX_ERROR_BODY = 64 * 1024
