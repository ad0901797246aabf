"""[ext] The ``GET /v1.3/metrics`` body, scoped to the caller's key.

A key sees its own requests (by route, method and status) and its own tasks by
status: what a test or benchmark needs to count what its client did, and
nothing about other tenants. An operator key (``ServerConfig.admin_keys``)
sees the whole server: every request, every task, the queue and the worker
processes (PIDs included).
"""

from __future__ import annotations

from typing import Any

from aiohttp.helpers import ChainMapProxy

from ._connguard import GUARD
from ._keys import ADMINS, DISPATCHER, METRICS, PROBE_POOL, RATE_LIMITER, STORE, SYNC_POOL

__all__ = ["metrics_body"]


async def metrics_body(app: ChainMapProxy, owner: str) -> dict[str, Any]:
    """``app`` is the request's ``config_dict`` (the API version's sub-app over the root)."""
    counter = app[METRICS]
    limiter = app[RATE_LIMITER]
    admin = owner in app[ADMINS]
    scope = None if admin else owner
    body: dict[str, Any] = {
        "scope": "server" if admin else "key",
        "since": counter.started,
        "requests": counter.snapshot(owner=scope),
        "total_requests": counter.total(owner=scope),
        "tasks": await app[STORE].status_counts(owner=scope),
        "rate_limit": None
        if limiter is None
        else {"requests": limiter.limit.requests, "per_sec": limiter.limit.per},
    }
    if admin:
        dispatcher = app[DISPATCHER]
        body["dispatcher"] = await dispatcher.stats()
        body["workers"] = dispatcher.pool.stats()
        body["sync_workers"] = app[SYNC_POOL].stats()
        body["probe_workers"] = app[PROBE_POOL].stats()
        guard = app.get(GUARD)
        if guard is not None:
            body["connections"] = guard.stats()
    return body
