"""The application's typed state (``web.AppKey``) and per-request keys."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from ._config import ServerConfig
from ._dispatch import Dispatcher
from ._metrics import RequestCounter
from ._ratelimit import Limiter
from ._service import TaskService
from ._store import Store
from ._urlfetch import FetchLimiter, UrlPolicy
from ._workers import WorkerPool

__all__ = [
    "ADMINS",
    "CONFIG",
    "DISPATCHER",
    "FETCH_LIMITER",
    "METRICS",
    "OWNER",
    "OWNERS",
    "PROBE_POOL",
    "RATE_LIMITER",
    "REQUEST_ID",
    "ROUTE",
    "SERVICE",
    "STARTED",
    "STORE",
    "SYNC_POOL",
    "TMP_DIR",
    "URL_POLICY",
    "URL_SESSION",
]

CONFIG = web.AppKey("config", ServerConfig)
STORE: web.AppKey[Store] = web.AppKey("store")
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
#: The domain behind the handlers (create, view, page, retrieve, embed_sync).
SERVICE = web.AppKey("service", TaskService)
SYNC_POOL = web.AppKey("sync_pool", WorkerPool)
#: Create-time probes, apart from ``SYNC_POOL``: a create never waits behind ``/embed``.
PROBE_POOL = web.AppKey("probe_pool", WorkerPool)
RATE_LIMITER: web.AppKey[Limiter | None] = web.AppKey("rate_limiter")
#: API key -> owner hash (``_store.owner_of``), for every accepted key.
OWNERS = web.AppKey("owners", dict[str, str])
#: Owner hashes of the operator keys (``ServerConfig.admin_keys``): ``/metrics`` shows them
#: the whole server.
ADMINS = web.AppKey("admins", frozenset[str])
#: [ext] Request counts by route/method/status since start; tests read it.
METRICS = web.AppKey("metrics", RequestCounter)
URL_POLICY = web.AppKey("url_policy", UrlPolicy)
URL_SESSION = web.AppKey("url_session", aiohttp.ClientSession)
#: URL fetches in flight, per key and in all (``ServerConfig.url_fetch_*``).
FETCH_LIMITER = web.AppKey("fetch_limiter", FetchLimiter)
TMP_DIR = web.AppKey("tmp_dir", Path)
#: ``loop.time()`` when the app started.
STARTED = web.AppKey("started", float)

#: Per-request values (``request[KEY]``).
REQUEST_ID = web.RequestKey("request_id", str)
#: The authenticated key's owner hash (see ``_store.owner_of``).
OWNER = web.RequestKey("owner", str)
#: The matched route's template, for metrics.
ROUTE = web.RequestKey("route", str)
