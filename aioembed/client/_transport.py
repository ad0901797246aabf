"""HTTP over one aiohttp session: limits, timeouts, retries, redirects and error mapping.

Everything above this module sees either a parsed, validated model or an
:mod:`aioembed.errors` exception; no aiohttp (or cattrs) exception leaves it.
Redirects are followed only within ``base_url``'s origin: the key, an upload and
an ``Idempotency-Key`` never reach another host.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import anyio
import anyio.to_thread
import attrs
import cattrs
from yarl import URL

from .. import _wire
from .._ratelimits import RateLimits
from .._retry import is_transient
from .._version import __version__
from ..errors import (
    APIStatusError,
    ClientClosedError,
    CrossOriginRedirectError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
    TransportError,
    error_for_status,
)
from ._config import MAX_ERROR_BODY, NO_RETRY, Limits, RetryPolicy, Timeouts
from ._upload import ProgressCallback, UploadSource, build_form

__all__ = ["Parse", "Transport"]

log = logging.getLogger("aioembed")

T = TypeVar("T")

#: Bodies larger than this are parsed on a worker thread, off the event loop.
_BIG_BODY = 1 << 20
#: Same-origin redirects followed per request before giving up.
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: A path segment naming an API version, as in ``/v1.3``.
_VERSION = re.compile(r"/v\d+(\.\d+)*(/|$)")

Query = Sequence[tuple[str, str]]
FormFactory = Callable[[], aiohttp.FormData | aiohttp.payload.Payload]
#: Turns an answer's JSON into what the caller wants; raising means "malformed answer".
Parse = Callable[[Any], T]


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


def _connect_message(url: URL, e: aiohttp.ClientConnectorError) -> str:
    """aiohttp says "Cannot connect to host h:p ssl:default [...]" even for http URLs."""
    os_error = e.os_error
    reason = os.strerror(os_error.errno) if os_error.errno else str(os_error)
    refused = isinstance(os_error, ConnectionRefusedError) or os_error.errno == errno.ECONNREFUSED
    hint = " (is the server running, and is base_url right?)" if refused else ""
    return f"cannot connect to {url.scheme}://{url.host}:{url.port}: {reason}{hint}"


@attrs.frozen
class _Answer:
    """One HTTP answer, read (up to a cap) before the connection is released."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: URL


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
        self._origin = URL(self.base_url).origin()
        self._headers = {"x-api-key": api_key, "User-Agent": f"aioembed/{__version__}"}
        self._session = session
        self._owns_session = session is None
        self._state = _State.UNOPENED
        self._requests = anyio.CapacityLimiter(limits.max_requests)
        #: The ``X-Ratelimit-*`` headers of the latest answer that had any.
        self.rate_limits: RateLimits | None = None
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

    def session(self) -> aiohttp.ClientSession:
        """The session, for requests that must not carry the API key (presigned URLs)."""
        return self._open()

    async def aclose(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._owns_session and self._session is not None:
            await self._session.close()

    def _timeout(self, upload: bool) -> aiohttp.ClientTimeout:
        t = self.timeouts
        total = t.upload if upload else t.request
        return aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=t.read)

    async def request(
        self,
        method: str,
        path: str,
        parse: Parse[T],
        *,
        params: Query | None = None,
        form: FormFactory | None = None,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send with retries and return ``parse(json_body)``.

        ``form`` builds a fresh body per attempt. A non-idempotent request is
        retried only if it never reached the server. Raises
        :class:`~aioembed.APIStatusError` subclasses, :class:`TransportError`,
        :class:`~aioembed.CrossOriginRedirectError` and
        :class:`~aioembed.ResponseValidationError` (also when ``parse`` fails).
        """
        session = self._open()
        policy = retry or self.retry
        url = URL(f"{self.base_url}/{path.lstrip('/')}")
        hdrs = {**self._headers, **(headers or {})}
        started = time.monotonic()
        attempt = failures = 0
        while True:
            attempt += 1
            try:
                async with self._requests:
                    answer = await self._send(session, method, url, params, form, hdrs)
                break
            except (TransportError, APIStatusError, _NeverSent) as exc:
                error: Exception = exc
                if isinstance(exc, _NeverSent):
                    error = TransportError(str(exc))
                # A 429 is refused before any work is done, and a refused connection
                # carried nothing: both are safe to send again whatever the method.
                safe = idempotent or isinstance(exc, (_NeverSent, RateLimitError))
                retryable = safe and is_transient(error)
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
        return await self._parse(answer, parse)

    async def post_form(
        self,
        path: str,
        fields: list[tuple[str, str]],
        parse: Parse[T],
        *,
        file_field: str | None = None,
        source: UploadSource | None = None,
        progress: ProgressCallback | None = None,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """POST a multipart form, its file (if any) under the client's upload limit.

        A body that cannot be produced twice (an async iterable) is never retried.
        """
        retry = None if source is None or source.replayable else NO_RETRY

        async def send() -> T:
            return await self.request(
                "POST",
                path,
                parse,
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
        url: URL,
        params: Query | None,
        form: FormFactory | None,
        headers: Mapping[str, str],
    ) -> _Answer:
        """One attempt, following same-origin redirects; raises for an error status."""
        timeout = self._timeout(form is not None)
        for _ in range(_MAX_REDIRECTS + 1):
            answer = await self._exchange(session, method, url, params, form, headers, timeout)
            if answer.status not in _REDIRECTS or "Location" not in answer.headers:
                break
            target = answer.url.join(URL(answer.headers["Location"]))
            if target.origin() != self._origin:
                raise CrossOriginRedirectError(
                    f"{method} {url} was redirected ({answer.status}) to another origin, "
                    f"{target.origin()}; not followed, so the API key and body stay with "
                    f"{self._origin}. Set base_url to the address that answers.",
                    source=str(url),
                    target=str(target),
                    status=answer.status,
                )
            if answer.status == 303 or (answer.status in (301, 302) and method == "POST"):
                method, form = "GET", None  # what every HTTP client does for these
            url, params = target, None  # the Location carries its own query
        else:
            raise TransportError(f"{method} {url}: more than {_MAX_REDIRECTS} redirects")
        if answer.status >= 400:
            raise self._api_error(answer)
        return answer

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        params: Query | None,
        form: FormFactory | None,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> _Answer:
        data = form() if form is not None else None
        try:
            async with session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                if resp.status < 400:
                    body = await _read_capped(resp, self.limits.max_response_bytes)
                else:
                    body = await _read_error(resp)
                self.rate_limits = RateLimits.from_headers(resp.headers) or self.rate_limits
                return _Answer(resp.status, resp.headers, body, resp.url)
        except aiohttp.ClientConnectorError as e:
            raise _NeverSent(_connect_message(url, e)) from e
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise RequestTimeoutError(f"{method} {url} timed out") from e
        except aiohttp.ClientError as e:
            raise TransportError(f"{method} {url} failed: {e!r}") from e

    def _api_error(self, answer: _Answer) -> APIStatusError:
        status, body, headers = answer.status, answer.body, answer.headers
        code, message, request_id = f"http_{status}", body[:200].decode(errors="replace"), None
        try:
            data = _wire.loads(body)
        except ValueError:
            data = None
        details = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            data = data["error"]  # v2 routes nest the error body
            details = data.get("details") if isinstance(data.get("details"), dict) else None
        if isinstance(data, dict):
            code = str(data.get("code") or code)
            message = str(data.get("message") or message)
            request_id = data.get("request_id")
        if status == 404 and not _VERSION.search(URL(self.base_url).path + "/"):
            message += (
                f" (base_url {self.base_url!r} names no API version: "
                f"did you mean {self.base_url + '/v1.3'!r}?)"
            )
        return error_for_status(
            status,
            code,
            message,
            request_id=request_id if isinstance(request_id, str) else headers.get("x-request-id"),
            headers=dict(headers),
            retry_after=_retry_after(headers),
            details=details,
        )

    async def _parse(self, answer: _Answer, parse: Parse[T]) -> T:
        def bad(what: str) -> ResponseValidationError:
            return ResponseValidationError(
                f"{answer.url} answered {answer.status} with {what}",
                url=str(answer.url),
                status=answer.status,
                request_id=answer.headers.get("x-request-id"),
            )

        if answer.status == 204 and not answer.body:
            return parse(None)  # No Content (DELETE /assets/{id})
        try:
            if len(answer.body) > _BIG_BODY:
                data = await anyio.to_thread.run_sync(_wire.loads_vectors, answer.body)
            else:
                data = _wire.loads_vectors(answer.body)
        except ValueError:
            raise bad(f"a body that is not JSON: {answer.body[:80]!r}") from None
        try:
            return parse(data)
        except cattrs.BaseValidationError as e:
            details = "; ".join(cattrs.transform_error(e)[:5])
            raise bad(f"a body of the wrong shape: {details}") from e
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise bad(f"a body of the wrong shape: {e}") from e


async def _read_error(resp: aiohttp.ClientResponse) -> bytes:
    """The first :data:`MAX_ERROR_BODY` bytes of an error answer: its status is what counts,
    so a longer body is cut (and its connection dropped) rather than refused."""
    body = b""
    while len(body) < MAX_ERROR_BODY:
        chunk = await resp.content.read(MAX_ERROR_BODY - len(body))
        if not chunk:
            return body
        body += chunk
    if not resp.content.at_eof():
        resp.close()
    return body


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, refusing one past ``cap`` bytes as soon as that is known."""
    request_id = resp.headers.get("x-request-id")

    def too_large(size: str) -> ResponseTooLargeError:
        resp.close()  # the rest of the body is not wanted: drop the connection
        return ResponseTooLargeError(
            f"{resp.method} {resp.url} answered {resp.status} with a body of {size}, "
            f"over the {cap}-byte limit (Limits.max_response_bytes for answers)",
            limit=cap,
            url=str(resp.url),
            status=resp.status,
            request_id=request_id,
        )

    if resp.content_length is not None:
        if resp.content_length > cap:
            raise too_large(f"{resp.content_length} bytes")
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > cap:
            raise too_large(f"more than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
