"""HTTP over one aiohttp session: limits, timeouts, retries and error mapping.

Everything above this module sees either parsed JSON or an :mod:`aioembed.errors`
exception; no aiohttp exception leaves it.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import anyio
import anyio.to_thread

from .. import _wire
from .._version import __version__
from ..errors import (
    APIStatusError,
    ClientClosedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    error_for_status,
)
from ._config import NO_RETRY, Limits, RetryPolicy, Timeouts
from ._upload import ProgressCallback, UploadSource, build_form

__all__ = ["Transport"]

log = logging.getLogger("aioembed")

#: Bodies larger than this are parsed on a worker thread, off the event loop.
_BIG_BODY = 1 << 20

Query = Sequence[tuple[str, str]]
FormFactory = Callable[[], aiohttp.FormData]


class _State(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class _NeverSent(Exception):
    """The connection was refused before any byte of the request left."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _api_error(status: int, body: bytes, headers: Mapping[str, str]) -> APIStatusError:
    code, message, request_id = f"http_{status}", body[:200].decode(errors="replace"), None
    try:
        data = _wire.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = str(data.get("code") or code)
        message = str(data.get("message") or message)
        request_id = data.get("request_id")
    return error_for_status(
        status,
        code,
        message,
        request_id=request_id or headers.get("x-request-id"),
        headers=dict(headers),
        retry_after=_retry_after(headers),
    )


class Transport:
    """Sends requests to ``base_url`` with the client's key, limits and retry policy."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        limits: Limits,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.retry = retry
        self.limits = limits
        self._headers = {"x-api-key": api_key, "User-Agent": f"aioembed/{__version__}"}
        self._session = session
        self._owns_session = session is None
        self._state = _State.UNOPENED
        self._requests = anyio.CapacityLimiter(limits.max_requests)
        self.uploads = anyio.CapacityLimiter(limits.max_uploads)

    def _open(self) -> aiohttp.ClientSession:
        if self._state is _State.CLOSED:
            raise ClientClosedError("the client is closed; create a new AsyncClient")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limits.max_connections)
            )
        if self._session.closed:
            raise ClientClosedError("the aiohttp session passed to AsyncClient is closed")
        self._state = _State.OPENED
        return self._session

    async def open(self) -> None:
        self._open()

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._owns_session and self._session is not None:
            await self._session.close()

    def _timeout(self, upload: bool, override: float | None) -> aiohttp.ClientTimeout:
        t = self.timeouts
        total = override if override is not None else (t.upload if upload else t.request)
        return aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=t.read)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        form: FormFactory | None = None,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send with retries and return the parsed JSON body.

        ``form`` builds a fresh body per attempt. A non-idempotent request is
        retried only if it never reached the server. Raises
        :class:`~aioembed.APIStatusError` subclasses and :class:`TransportError`.
        """
        session = self._open()
        policy = retry or self.retry
        url = f"{self.base_url}/{path.lstrip('/')}"
        hdrs = {**self._headers, **(headers or {})}
        started = time.monotonic()
        attempt = failures = 0
        while True:
            attempt += 1
            try:
                async with self._requests:
                    return await self._send(
                        session,
                        method,
                        url,
                        params,
                        form,
                        hdrs,
                        self._timeout(form is not None, timeout),
                    )
            except (TransportError, APIStatusError, _NeverSent) as exc:
                error: Exception = exc
                retryable = isinstance(exc, _NeverSent) or (
                    idempotent and isinstance(exc, (TransportError, RateLimitError, ServerError))
                )
                if isinstance(exc, RateLimitError):
                    retryable = True  # a 429 is refused before any work is done
                if isinstance(exc, _NeverSent):
                    error = TransportError(str(exc.__cause__ or exc))
                retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                # A 429 says when to come back: while retries are allowed at all it is
                # bounded by the time budget, not by the attempts (a rate-limited batch
                # would otherwise fail items that only had to wait their turn).
                if not (isinstance(exc, RateLimitError) and policy.attempts > 1):
                    failures += 1
                delay = policy.backoff(attempt, retry_after)
                spent = time.monotonic() - started
                if not retryable or failures >= policy.attempts or spent + delay > policy.budget:
                    if error is exc:
                        raise
                    raise error from exc.__cause__
                log.debug("retrying %s %s in %.2fs after %r", method, path, delay, exc)
                await anyio.sleep(delay)

    async def post_form(
        self,
        path: str,
        fields: list[tuple[str, str]],
        *,
        file_field: str | None = None,
        source: UploadSource | None = None,
        progress: ProgressCallback | None = None,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST a multipart form, its file (if any) under the client's upload limit.

        A body that cannot be produced twice (an async iterable) is never retried.
        """
        retry = None if source is None or source.replayable else NO_RETRY

        async def send() -> Any:
            return await self.request(
                "POST",
                path,
                form=lambda: build_form(fields, file_field, source, progress),
                idempotent=idempotent,
                headers=headers,
                retry=retry,
            )

        if source is None:
            return await send()
        async with self.uploads:
            return await send()

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        params: Query | None,
        form: FormFactory | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> Any:
        data = form() if form is not None else None
        try:
            async with session.request(
                method, url, params=params, data=data, headers=headers, timeout=timeout
            ) as resp:
                body = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except aiohttp.ClientConnectorError as e:
            raise _NeverSent(str(e)) from e
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise RequestTimeoutError(f"{method} {url} timed out") from e
        except aiohttp.ClientError as e:
            raise TransportError(f"{method} {url} failed: {e!r}") from e
        if status >= 400:
            raise _api_error(status, body, resp_headers)
        try:
            if len(body) > _BIG_BODY:
                return await anyio.to_thread.run_sync(_wire.loads_vectors, body)
            return _wire.loads_vectors(body)
        except ValueError as e:
            raise TransportError(f"{method} {url} returned a body that is not JSON") from e
