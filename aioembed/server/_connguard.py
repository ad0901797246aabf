"""Connection limits: no client may hold a connection (or a file descriptor) for free.

aiohttp on its own waits for ever for a request line, for the rest of a
header, and for a body that trickles in a byte at a time, and accepts every
connection it is offered; a crowd of such clients (slowloris) exhausts the open
file limit, after which nobody is served. :class:`GuardedRequestHandler` adds:

* a cap on open connections per server and per client address; a connection
  over a cap is answered at once (``503`` server-wide, ``429`` for one address,
  both with ``Retry-After``) and closed, so it costs a descriptor for a moment;
* a header timeout: once the first byte of a request arrived, the request line
  and headers must be complete within ``header_timeout`` seconds;
* a body rate: while a handler waits for the body, at least ``min_body_rate``
  bytes per second must arrive over each ``body_timeout`` window, else the
  request ends ``408 request_timeout`` (its partial upload removed) and the
  connection is closed. Windows in which the server, not the client, is behind
  (unread bytes are buffered) do not count;
* the idle keep-alive timeout is aiohttp's own (``keepalive_timeout``), which
  also covers a connection that never sends anything;
* on shutdown, bodies of requests in flight keep being read (aiohttp drops
  them), so an upload that completes within the grace period
  (``ServerConfig.shutdown_grace``) is accepted; the rest are cut at its end.

:class:`EmfileLogFilter` keeps "Too many open files" from flooding the log
should the descriptor limit be hit anyway: one line per interval, with the
number of lines it stood for.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
import uuid
from collections import Counter
from typing import Any

import attrs
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .._wire import dumps
from ..errors import APIStatusError, ErrorCode
from ._config import ServerConfig
from ._keys import CONFIG

__all__ = [
    "GUARD",
    "BodyTimeoutError",
    "ConnectionGuard",
    "ConnectionLimits",
    "EmfileLogFilter",
    "GuardedRequestHandler",
    "guard_runner",
]

log = logging.getLogger("aioembed.server")

#: Descriptors kept free for the store, worker pipes, uploads and URL fetches.
FD_RESERVE = 256
#: Refused connections held open (to let the refusal be read) at most at once.
MAX_LINGERING = 256
LINGER = 1.0


@attrs.frozen(kw_only=True)
class ConnectionLimits:
    """See :class:`aioembed.server.ServerConfig` for each field's meaning and default."""

    max_connections: int
    max_connections_per_ip: int
    header_timeout: float
    body_timeout: float
    min_body_rate: int

    @classmethod
    def from_config(cls, config: ServerConfig) -> ConnectionLimits:
        return cls(
            max_connections=config.max_connections,
            max_connections_per_ip=config.max_connections_per_ip,
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            min_body_rate=config.min_body_rate,
        )


class BodyTimeoutError(APIStatusError):
    """``408``: the request body stopped arriving (or arrived too slowly)."""

    status = 408

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.REQUEST_TIMEOUT, status=408)


class ConnectionGuard:
    """Open connections per server and per client address, and what was refused or cut."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = fit_open_file_limit(limits.max_connections)
        self.open = 0
        self.per_ip: Counter[str] = Counter()
        self.lingering = 0
        #: Events by kind: ``refused_server``, ``refused_ip``, ``header_timeout``, ``body_timeout``.
        self.events: Counter[str] = Counter()

    def admit(self, ip: str) -> tuple[int, str] | None:
        """Count a new connection in, or return the (status, reason) to refuse it with."""
        if self.open >= self.max_connections:
            self.events["refused_server"] += 1
            return 503, "The server has too many open connections; retry shortly."
        if self.per_ip[ip] >= self.limits.max_connections_per_ip:
            self.events["refused_ip"] += 1
            return 429, "Too many open connections from this address; retry shortly."
        self.open += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.open -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def stats(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "max": self.max_connections,
            "addresses": len(self.per_ip),
            **dict(self.events),
        }


#: The app's guard (set by :func:`guard_runner`), for ``/metrics``.
GUARD = web.AppKey("connection_guard", ConnectionGuard)

_EMFILE_FILTER: EmfileLogFilter | None = None


def guard_runner(app: web.Application, runner_kwargs: dict[str, Any]) -> ConnectionGuard | None:
    """Set up the limits of ``app``'s config for a runner about to be built with
    ``runner_kwargs`` (idle timeout, shutdown grace, unless given); returns the guard."""
    global _EMFILE_FILTER
    config = app.get(CONFIG)
    if config is None:
        return None
    runner_kwargs.setdefault("keepalive_timeout", config.idle_timeout)
    runner_kwargs.setdefault("shutdown_timeout", config.shutdown_grace)
    guard = ConnectionGuard(ConnectionLimits.from_config(config))
    app[GUARD] = guard
    if _EMFILE_FILTER is None:
        _EMFILE_FILTER = EmfileLogFilter()
        for name in ("asyncio", "aiohttp.server", "aiohttp.web", "aioembed.server"):
            logging.getLogger(name).addFilter(_EMFILE_FILTER)
    return guard


def fit_open_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit so ``wanted`` connections fit (up to the hard
    limit); returns the connection cap that really fits, logging when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    fits = max(1, soft - FD_RESERVE)
    log.warning(
        "the open-file limit (%d) fits %d connections, not max_connections=%d; "
        "raise it (ulimit -n) to allow more",
        soft,
        fits,
        wanted,
    )
    return fits


def _refusal(status: int, message: str) -> bytes:
    request_id = uuid.uuid4().hex
    code = ErrorCode.TOO_MANY_REQUESTS if status == 429 else ErrorCode.SERVER_BUSY
    body = dumps({"code": code, "message": message, "request_id": request_id})
    reason = "Too Many Requests" if status == 429 else "Service Unavailable"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nx-request-id: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler with the limits in the module docstring.

    The guard comes from the ``web.Server`` that creates the handler (its
    ``guard`` attribute, set by :class:`~aioembed.server.ServerRunner`); without
    one the handler behaves exactly like aiohttp's.
    """

    _guard: ConnectionGuard | None = None
    _ip: str | None = None
    _refused = False
    _header_handle: asyncio.TimerHandle | None = None
    _body_handle: asyncio.TimerHandle | None = None
    _body_mark = 0
    _body_of: BaseRequest | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard: ConnectionGuard | None = getattr(self._manager, "guard", None)
        if guard is not None:
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if peer else ""
            refusal = guard.admit(ip)
            if refusal is not None:
                self._refuse(transport, guard, *refusal)
                return
            self._guard, self._ip = guard, ip
        super().connection_made(transport)

    def _refuse(
        self, transport: asyncio.BaseTransport, guard: ConnectionGuard, status: int, why: str
    ) -> None:
        self._refused = True
        assert isinstance(transport, asyncio.Transport)
        transport.write(_refusal(status, why))
        if guard.lingering >= MAX_LINGERING:
            transport.close()
            return
        # Closing with the client's request unread would reset the connection before the
        # client reads the answer: read (and drop) for a moment, then close.
        guard.lingering += 1

        def close() -> None:
            guard.lingering -= 1
            transport.close()

        self._loop.call_later(LINGER, close)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._cancel_timers()
        if self._guard is not None and self._ip is not None:
            self._guard.release(self._ip)
            self._ip = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if (self._close or self._force_close) and self._finishing_body():
            # Shutting down (SIGTERM): aiohttp would drop the rest of a body in flight, so
            # the upload could only be cut at the grace's end. Let it arrive instead.
            close, force = self._close, self._force_close
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                self._close, self._force_close = close, force
            return
        super().data_received(data)
        if self._guard is None or self._force_close:
            return
        if self._request_in_progress or self._messages:
            if self._header_handle is not None:
                self._header_handle.cancel()
                self._header_handle = None
            if self._body_handle is None:
                self._arm_body_check()
        elif self._header_handle is None:
            self._header_handle = self._loop.call_later(
                self._guard.limits.header_timeout, self._header_expired
            )

    def _finishing_body(self) -> bool:
        """A handler is running and still waiting for its request's body."""
        request = self._current_request
        transport = self.transport
        return (
            request is not None
            and not request.content.is_eof()
            and transport is not None
            and not transport.is_closing()
        )

    def _cancel_timers(self) -> None:
        for handle in (self._header_handle, self._body_handle):
            if handle is not None:
                handle.cancel()
        self._header_handle = self._body_handle = None

    def _header_expired(self) -> None:
        self._header_handle = None
        if self._guard is None or self._request_in_progress or self._messages:
            return
        self._guard.events["header_timeout"] += 1
        self.force_close()

    def _arm_body_check(self) -> None:
        assert self._guard is not None
        request = self._current_request
        self._body_of = request
        self._body_mark = request.content.total_bytes if request is not None else 0
        self._body_handle = self._loop.call_later(self._guard.limits.body_timeout, self._check_body)

    def _check_body(self) -> None:
        self._body_handle = None
        guard, request = self._guard, self._current_request
        if guard is None or self._force_close:
            return
        if request is None:
            if self._request_in_progress or self._messages:
                self._arm_body_check()  # the handler has not started yet
            return
        content = request.content
        if content.is_eof():
            return  # the whole body is in; the next request re-arms
        if request is not self._body_of:
            self._arm_body_check()  # a new request (keep-alive): its window starts now
            return
        got = content.total_bytes - self._body_mark
        window = guard.limits.body_timeout
        behind = content._size > 0  # unread bytes: the server is the slow side
        if not behind and got < guard.limits.min_body_rate * window:
            guard.events["body_timeout"] += 1
            content.set_exception(
                BodyTimeoutError(
                    f"The request body arrived too slowly ({got} bytes in {window:g} s; "
                    f"the server needs at least {guard.limits.min_body_rate} bytes/s)."
                )
            )
            # The handler answers 408 and closes; make sure the connection goes anyway.
            self._loop.call_later(5.0, self.force_close)
            return
        self._arm_body_check()


class EmfileLogFilter(logging.Filter):
    """At most one "Too many open files" record per ``interval`` seconds, process-wide
    (attach to the loggers that report accept/open failures: ``asyncio``, ``aiohttp.*``)."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._last = -float("inf")
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not _is_emfile(record):
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return False
        self._last = now
        if self.suppressed:
            record.msg = f"{record.msg} (and {self.suppressed} more like it since the last one)"
            self.suppressed = 0
        record.exc_info = None  # one line, not a traceback
        record.exc_text = None
        return True


def _is_emfile(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    return "Too many open files" in record.getMessage()
