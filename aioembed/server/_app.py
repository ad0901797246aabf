"""The application factory, its one middleware and its lifecycle.

``create_app(config)`` builds the root ``web.Application`` and mounts each API
version's HTTP adapter (:data:`ADAPTERS`) as a sub-application under its prefix;
resources (data directory lock, store, worker pools, URL session, queue,
dispatcher, service) are opened and closed in ``cleanup_ctx``. One middleware does, in the contract's precedence:
request id, API key (401), rate limit (429), then the route (404/405 come from
aiohttp's router as exceptions) and the handler; and it renders *every* error
as the contract's JSON with ``request_id`` and ``x-request-id``.

Errors aiohttp produces before any middleware runs (a malformed request line,
oversized headers) go through the protocol's ``handle_error``;
:class:`ServerRunner` swaps in a request handler that renders those as the
contract's JSON too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..errors import (
    APIStatusError,
    ErrorCode,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
)
from ._config import ServerConfig
from ._connguard import GuardedRequestHandler, guard_runner
from ._dispatch import Dispatcher
from ._http import PUBLIC, error_reply, health, is_public, owner_for, renderer_for
from ._http_assets import make_app as make_assets_app
from ._http_embed_v2 import ADAPTER as EMBED_V2
from ._http_v1 import ADAPTER as V1
from ._keys import (
    ADMINS,
    CONFIG,
    DISPATCHER,
    METRICS,
    OWNER,
    OWNERS,
    PROBE_POOL,
    RATE_LIMITER,
    REQUEST_ID,
    SERVICE,
    STARTED,
    STORE,
    SYNC_POOL,
    TMP_DIR,
    URL_POLICY,
    URL_SESSION,
)
from ._media import LocalMediaStore, MediaStore
from ._metrics import UNMATCHED, RequestCounter
from ._private import private_dir
from ._queue import InProcessQueue, TaskQueue
from ._ratelimit import DURATION, Limiter, RateLimiter
from ._render import new_request_id
from ._service import TaskService
from ._store import SqliteStore, Store, owner_of
from ._urlfetch import UrlPolicy, make_session
from ._urlgate import HttpUrlGate
from ._v2_http import PREFIX as ASSETS_PREFIX
from ._workers import exit_if_reimported_main, run_init, worker_pool

if TYPE_CHECKING:
    from ._operator import OperatorBackends

__all__ = ["ServerRunner", "create_app"]

log = logging.getLogger("aioembed.server")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Every API version this server speaks, each mounted under its prefix. A new
#: version is a new contract package and adapter module, and one entry here.
ADAPTERS = (V1, EMBED_V2)


def _from_http_exception(exc: web.HTTPException, request: web.BaseRequest) -> APIStatusError:
    """aiohttp's own errors (unknown route, wrong method, body too large) as contract errors."""
    path = request.path if len(request.path) <= 100 else request.path[:97] + "..."
    if exc.status == 404:
        return NotFoundError(
            f"The path {path!r} does not exist.", code=ErrorCode.RESOURCE_NOT_EXIST
        )
    if exc.status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        return APIStatusError(
            f"The method {request.method} is not allowed on {path!r}"
            + (f"; use {', '.join(allowed)}." if allowed else "."),
            code=ErrorCode.METHOD_NOT_ALLOWED,
            status=405,
            headers={"Allow": ",".join(allowed)} if allowed else None,
        )
    if exc.status == 413:
        return PayloadTooLargeError(
            "The request body is larger than the server accepts.",
            code=ErrorCode.VIDEO_FILESIZE_TOO_LARGE,
        )
    if exc.status < 500:
        return APIStatusError(
            exc.text or exc.reason, code=ErrorCode.PARAMETER_INVALID, status=exc.status
        )
    return ServerError("The server failed to handle the request.", code=ErrorCode.INTERNAL_ERROR)


def _unexpected(exc: BaseException) -> ServerError:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ServerError("The server ran out of disk space.", code=ErrorCode.INTERNAL_ERROR)
    return ServerError("The server failed to handle the request.", code=ErrorCode.INTERNAL_ERROR)


def _route_name(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return UNMATCHED
    resource = info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def _middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    config = request.config_dict
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    headers: dict[str, str] = {}
    route = _route_name(request)
    resp: web.StreamResponse
    try:
        if not is_public(request):
            owner = request[OWNER] = owner_for(request)
            limiter = config[RATE_LIMITER]
            if limiter is not None:
                decision = await limiter.acquire(owner)
                headers.update(decision.headers())
                if not decision.allowed:
                    raise decision.error()
        resp = await handler(request)
    except (web.HTTPException, APIStatusError, asyncio.CancelledError, ConnectionError) as e:
        if isinstance(e, (asyncio.CancelledError, ConnectionError)):
            # The client went away (an aborted upload): nobody will read an answer.
            # Counted as 499, nginx's "client closed request".
            config[METRICS].record(route, request.method, 499, owner=request.get(OWNER))
            if isinstance(e, asyncio.CancelledError):
                raise
            resp = web.Response(status=499)
            resp.force_close()
            return resp
        err = _from_http_exception(e, request) if isinstance(e, web.HTTPException) else e
        resp = error_reply(err, request_id=request_id, render=renderer_for(request))
    except Exception as e:
        log.exception(
            "internal error handling %s %s (request %s)", request.method, request.path, request_id
        )
        resp = error_reply(_unexpected(e), request_id=request_id, render=renderer_for(request))
    if resp.status >= 400 and request.body_exists and not request.content.at_eof():
        # The body was not read to the end (refused early): the connection
        # cannot carry another request.
        resp.force_close()
    resp.headers.update(headers)
    resp.headers.update(await _duration_headers(request))
    resp.headers["x-request-id"] = request_id
    config[METRICS].record(route, request.method, resp.status, owner=request.get(OWNER))
    return resp


async def _duration_headers(request: web.Request) -> dict[str, str]:
    """``X-Ratelimit-Duration-*`` of the caller's media budget as this request left it."""
    budget, owner = request.config_dict[_MEDIA_BUDGET], request.get(OWNER)
    if budget is None or owner is None:
        return {}
    try:
        return (await budget.debit(owner, 0.0)).headers()
    except Exception:  # the answer is made; a missing header is not worth losing it
        log.exception("reading the media budget failed (request %s)", request[REQUEST_ID])
        return {}


_LOCK_FD = web.AppKey("lock_fd", int)
_MEDIA_BUDGET: web.AppKey[Limiter | None] = web.AppKey("media_budget")
_QUEUE: web.AppKey[TaskQueue] = web.AppKey("queue")
_OPERATOR: web.AppKey[OperatorBackends] = web.AppKey("operator")


def _prepare_data_dir(data_dir: Path) -> tuple[Path, Path, int]:
    """Create the layout, prove it writable, lock it for this process (flock)."""
    media, tmp = data_dir / "media", data_dir / "uploads"
    try:
        for d in (data_dir, media, tmp):
            private_dir(d)
        probe = tmp / f".write-test-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        raise RuntimeError(f"data directory {data_dir} is not usable: {e}") from e
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"data directory {data_dir} is in use by another server") from None
    # Leftovers of uploads that were in flight when the last server stopped.
    for leftover in tmp.iterdir():
        with contextlib.suppress(OSError):
            leftover.unlink()
    return media, tmp, fd


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    loop = asyncio.get_running_loop()
    app[STARTED] = loop.time()
    # In this process too, so names it registers pass the backend check.
    try:
        run_init(config.worker_init)
    except Exception as e:
        raise RuntimeError(f"worker_init {config.worker_init!r} failed: {e}") from e
    _check_backend(config.backend)
    store = app[STORE]
    stack = contextlib.AsyncExitStack()
    try:
        if config.operator_mode:
            media, tmp = await _open_operator(app, stack)
        else:
            media_dir, tmp, lock_fd = await loop.run_in_executor(
                None, _prepare_data_dir, config.data_dir
            )
            app[_LOCK_FD] = lock_fd
            stack.callback(os.close, lock_fd)
            media = LocalMediaStore(media_dir)
        app[TMP_DIR] = tmp
        await store.open()
        stack.push_async_callback(store.close)
        await store.prune_idempotency(time.time() - config.idempotency_ttl)
        await _start_services(app, stack, media, tmp)
    except BaseException:
        await stack.aclose()
        raise
    async with stack:
        yield


async def _open_operator(
    app: web.Application, stack: contextlib.AsyncExitStack
) -> tuple[MediaStore, Path]:
    """Operator mode: no data-dir lock (replicas share nothing local); the queue, the
    shared rate limiter and the object store opened; a private scratch directory."""
    from ._operator import OperatorBackends, scratch_dir

    config = app[CONFIG]
    # The data directory holds only what is not shared yet (assets): no lock, no media.
    await asyncio.get_running_loop().run_in_executor(None, private_dir, config.data_dir)
    scratch = stack.enter_context(scratch_dir())
    await app[_OPERATOR].open_queue_and_limiter(stack)
    media = await stack.enter_async_context(OperatorBackends.media(config, scratch))
    return media, scratch


async def _start_services(
    app: web.Application, stack: contextlib.AsyncExitStack, media: MediaStore, scratch: Path
) -> None:
    """Worker pools, the URL session, the queue, the dispatcher and the service."""
    config, store = app[CONFIG], app[STORE]
    resume = await store.processing_ids()
    # Inputs that belong to no unfinished task (a crash between adopt and commit,
    # or between a task's end and the drop).
    await media.sweep(resume)
    session = make_session(
        app[URL_POLICY],
        connect_timeout=config.url_connect_timeout,
        limit=config.url_fetch_concurrency,
    )
    app[URL_SESSION] = session
    stack.push_async_callback(session.close)
    pool = worker_pool(config, config.workers, name="worker")
    stack.push_async_callback(pool.close)
    sync_pool = worker_pool(config, config.sync_workers, name="sync")
    stack.push_async_callback(sync_pool.close)
    app[SYNC_POOL] = sync_pool
    probe_pool = worker_pool(config, config.probe_workers, name="probe")
    stack.push_async_callback(probe_pool.close)
    app[PROBE_POOL] = probe_pool
    if config.prestart_workers:
        for each in (pool, sync_pool, probe_pool):
            each.prestart()
    urls = HttpUrlGate(session=lambda: app[URL_SESSION], policy=app[URL_POLICY], config=config)
    queue = app[_QUEUE]
    dispatcher = Dispatcher(
        store=store,
        queue=queue,
        media=media,
        pool=pool,
        config=config,
        scratch=scratch,
        urls=urls,
        media_budget=app[_MEDIA_BUDGET],
    )
    app[DISPATCHER] = dispatcher
    app[SERVICE] = TaskService(
        config=config,
        store=store,
        queue=queue,
        media=media,
        urls=urls,
        sync_pool=sync_pool,
        probe_pool=probe_pool,
        scratch=scratch,
        progress=dispatcher.progress.get,
        media_budget=app[_MEDIA_BUDGET],
    )
    await dispatcher.start(resume, consume=config.consume_tasks)
    stack.push_async_callback(dispatcher.close)
    if resume:
        log.info("resuming %d unfinished task(s)", len(resume))


def _check_backend(name: str | None) -> None:
    if name is None:
        return
    from ..engine import available_backends

    known = available_backends()
    if name not in known:
        raise RuntimeError(f"unknown engine backend {name!r}; available: {', '.join(known)}")


def create_app(
    config: ServerConfig, *, store: Store | None = None, queue: TaskQueue | None = None
) -> web.Application:
    """The local embed server as a ``web.Application``.

    ``store`` replaces the default :class:`SqliteStore` in ``config.data_dir``,
    ``queue`` the default :class:`InProcessQueue` (both are seams with a
    conformance suite, ``tests/test_conformance.py``).
    Start-up raises ``RuntimeError`` when the data directory is unusable or
    locked by another server. Request counts are at ``app[METRICS]``.

    A script that calls this must do so under ``if __name__ == "__main__":``:
    worker processes import the script again. Called in a worker re-running an
    unguarded script, it ends that worker (the server then answers ``500``
    naming the fix) instead of building a second server.
    """
    exit_if_reimported_main()
    app = web.Application(middlewares=[_middleware], client_max_size=config.max_field_bytes * 16)
    app[CONFIG] = config
    limiter: Limiter | None = (
        RateLimiter(config.rate_limit) if config.rate_limit is not None else None
    )
    media_budget: Limiter | None = (
        RateLimiter(config.media_rate_limit, dimension=DURATION)
        if config.media_rate_limit is not None
        else None
    )
    if config.operator_mode:
        from ._operator import OperatorBackends

        shared = app[_OPERATOR] = OperatorBackends.build(config)
        store, queue, limiter = shared.store, shared.queue, shared.limiter
        media_budget = shared.media_budget
    the_store: Store = (
        store if store is not None else SqliteStore(config.data_dir / "aioembed.sqlite3")
    )
    app[STORE] = the_store
    app[_QUEUE] = queue if queue is not None else InProcessQueue()
    app[METRICS] = RequestCounter()
    app[RATE_LIMITER] = limiter
    app[_MEDIA_BUDGET] = media_budget
    app[URL_POLICY] = UrlPolicy.from_entries(config.url_allow)
    app[OWNERS] = {key: owner_of(key) for key in (*config.api_keys, *config.admin_keys)}
    app[ADMINS] = frozenset(owner_of(key) for key in config.admin_keys)
    app[PUBLIC] = frozenset({"health"})
    app.router.add_get("/health", health, name="health")
    for adapter in ADAPTERS:
        app.add_subapp(adapter.api.prefix, adapter.make_app())
    app.add_subapp(ASSETS_PREFIX, make_assets_app(app))
    app.cleanup_ctx.append(_lifecycle)
    return app


# -- protocol-level errors as contract JSON ---------------------------------------------


class _JSONErrorRequestHandler(GuardedRequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs; may raise
        else:
            # A malformed request is the client's error, and anyone can send them: a
            # line at debug level, not an ERROR traceback per request (a log flood).
            log.debug("malformed request from %s: %s", request.remote, exc or message)
            if request.writer.output_size > 0:
                raise ConnectionError("Response is sent already, cannot send an error response")
        if status == 500:
            err: APIStatusError = ServerError(
                "The server failed to handle the request.", code=ErrorCode.INTERNAL_ERROR
            )
        elif status == 413:
            err = PayloadTooLargeError(
                "The request is larger than the server accepts.",
                code=ErrorCode.VIDEO_FILESIZE_TOO_LARGE,
            )
        else:
            detail = (message or "").splitlines()[0][:200] if message else "malformed request"
            err = APIStatusError(
                f"The request is malformed: {detail}",
                code=ErrorCode.PARAMETER_INVALID,
                status=status,
            )
        return error_reply(err, close=True)


class _JSONErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JSONErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class ServerRunner(web.AppRunner):
    """An ``AppRunner`` whose low-level errors (bad request line, headers too large)
    are rendered as the contract's JSON like every other error, with the config's
    connection limits (:mod:`._connguard`), idle timeout and shutdown grace."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        self.guard = guard_runner(app, kwargs)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The server object aiohttp built, with our handler class: same state, same
        # arguments, only ``__call__`` differs.
        server.__class__ = _JSONErrorServer
        server.guard = self.guard  # type: ignore[attr-defined]
        return server
