"""``aioembed worker``: engine processes on any host, claiming tasks from PostgreSQL.

A worker is the server's :class:`~._dispatch.Dispatcher` without HTTP: one
consumer per engine process of a :class:`~._workers.WorkerPool`, each claiming
a task from the shared :class:`~._pg_queue.PostgresQueue` (a heartbeat lease),
reading its media from the object store (downloaded to a scratch file), and
committing the result with the lease release in one transaction. ``video_url``
tasks are downloaded here, beside the engine processes. Workers also run the
reclaim sweep, so a worker killed mid-task (``kill -9``, a lost host) has its
task run again by another once its lease expires.

Any number of workers may run; each needs the database and the object store,
never a replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ._config import ServerConfig
from ._dispatch import Dispatcher
from ._operator import OperatorBackends, scratch_dir, shown_database
from ._urlfetch import UrlPolicy, make_session
from ._urlgate import HttpUrlGate
from ._workers import run_init, worker_pool

__all__ = ["run_worker"]

log = logging.getLogger("aioembed.worker")


async def run_worker(
    config: ServerConfig,
    *,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Claim and embed tasks with ``config.workers`` engine processes until ``stop`` is set.

    ``config`` must be in operator mode (``database`` and ``media``). Start-up errors
    (database or object store unreachable) propagate, the database URL redacted.
    """
    if not config.operator_mode:
        raise ValueError("a worker needs a database and a media store")
    try:
        run_init(config.worker_init)
    except Exception as e:
        raise RuntimeError(f"worker_init {config.worker_init!r} failed: {e}") from e
    shared = OperatorBackends.build(config)
    async with contextlib.AsyncExitStack() as stack:
        scratch = stack.enter_context(scratch_dir())
        try:
            await shared.store.open()
            stack.push_async_callback(shared.store.close)
            await shared.queue.open()
            stack.push_async_callback(shared.queue.close)
            if shared.media_budget is not None:
                await stack.enter_async_context(shared.media_budget)
        except (OSError, ValueError) as e:
            raise RuntimeError(
                f"database {shown_database(config)} is not reachable: {type(e).__name__}"
            ) from None
        media = await stack.enter_async_context(OperatorBackends.media(config, scratch))
        policy = UrlPolicy.from_entries(config.url_allow)
        session = make_session(
            policy, connect_timeout=config.url_connect_timeout, limit=config.url_fetch_concurrency
        )
        stack.push_async_callback(session.close)
        pool = worker_pool(config, config.workers, name="worker")
        stack.push_async_callback(pool.close)
        if config.prestart_workers:
            pool.prestart()
        dispatcher = Dispatcher(
            store=shared.store,
            queue=shared.queue,
            media=media,
            pool=pool,
            config=config,
            scratch=scratch,
            urls=HttpUrlGate(session=lambda: session, policy=policy, config=config),
            media_budget=shared.media_budget,
        )
        # v2 tasks with an asset source read the asset from the bucket.
        assets = OperatorBackends.media(config, scratch, namespace="assets")
        dispatcher.use_assets(await stack.enter_async_context(assets))
        # Replicas queue what they create; a worker only consumes (and reclaims).
        await dispatcher.start([])
        stack.push_async_callback(dispatcher.close)
        log.info("worker: %d engine process(es) on %s", config.workers, shown_database(config))
        if on_ready is not None:
            on_ready()
        await stop.wait()
