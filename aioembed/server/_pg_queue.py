"""The :class:`~._queue.TaskQueue` seam in PostgreSQL, for replicas and workers on many hosts.

One row per queued or leased task. A claim takes the oldest due row with
``FOR UPDATE SKIP LOCKED`` (claimers never wait on each other) and stamps it with
a fresh token from a sequence: the fencing token. Heartbeat, complete and fail
match on ``(task_id, token)`` and an unexpired lease, so a stalled holder whose
lease was reclaimed and re-claimed gets :class:`~._queue.LeaseLost`. Reclaiming
expired leases is its own statement (:meth:`PostgresQueue.reclaim_expired`, run
as a periodic sweep), never part of the claim. A submit or a reclaim sends
``NOTIFY`` so waiting claimers wake at once; they also poll, so a lost
notification (a dropped listener connection) costs at most ``poll`` seconds.

Times are seconds on the database's clock (one clock for every host), or on an
injected ``clock`` so tests can expire leases without sleeping. Needs the
``aioembed[scale]`` extra (asyncpg).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import asyncpg

from ._queue import Lease, LeaseLost

__all__ = ["PostgresQueue"]

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,47}")
#: The statement's "now": the injected clock's value, or the database's own clock.
_NOW = "coalesce($1::float8, extract(epoch from clock_timestamp())::float8)"


def _schema_sql(s: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE SEQUENCE IF NOT EXISTS {s}.queue_order;
    CREATE SEQUENCE IF NOT EXISTS {s}.lease_token;
    CREATE TABLE IF NOT EXISTS {s}.queue (
        task_id text PRIMARY KEY,
        ready_at float8 NOT NULL,
        position bigint NOT NULL DEFAULT nextval('{s}.queue_order'),
        token bigint,
        expires float8
    );
    CREATE INDEX IF NOT EXISTS queue_due ON {s}.queue (ready_at, position)
        WHERE token IS NULL;
    CREATE INDEX IF NOT EXISTS queue_leased ON {s}.queue (expires) WHERE token IS NOT NULL;
    """


class PostgresQueue:
    """:class:`~._queue.TaskQueue` on a PostgreSQL database shared by many processes.

    ``dsn`` is a ``postgresql://`` URL; the tables live in ``schema`` (created on
    :meth:`open`). Use as ``async with PostgresQueue(dsn) as queue: ...``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "aioembed",
        clock: Callable[[], float] | None = None,
        poll: float = 1.0,
        pool_size: int = 4,
    ) -> None:
        if not _IDENT.fullmatch(schema):
            raise ValueError(f"schema must match {_IDENT.pattern}, got {schema!r}")
        self._dsn, self._s, self._clock, self._poll = dsn, schema, clock, poll
        self._pool_size = pool_size
        self._channel = f"{schema}_queue"
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def schema(self) -> str:
        return self._s

    def shares(self, dsn: str, schema: str) -> bool:
        """True when this queue's table is ``schema``'s in the database at ``dsn``."""
        return (dsn, schema) == (self._dsn, self._s)

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, timeout=30
        )
        async with self._pool.acquire() as conn:
            # Two processes opening at once would race on CREATE ... IF NOT EXISTS.
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._s)
                await conn.execute(_schema_sql(self._s))
        await self._listen()

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self._dsn, timeout=30)
        await self._listener.add_listener(self._channel, self._wake)

    async def _keep_listening(self) -> None:
        """Reconnect the listener if the database dropped it (a restart, a failover);
        meanwhile claimers poll."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            await self._listen()
        except (OSError, asyncpg.PostgresError, TimeoutError):
            self._listener = None

    async def close(self) -> None:
        if self._listener is not None:
            if not self._listener.is_closed():
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> PostgresQueue:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _wake(self, *_: Any) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _now(self) -> float | None:
        return None if self._clock is None else self._clock()

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("PostgresQueue is not open")
        rows: list[asyncpg.Record] = await self._pool.fetch(sql, self._now(), *args)
        return rows

    async def submit(self, task_id: str, *, delay: float = 0.0) -> None:
        await self._fetch(
            f"""WITH added AS (
                    INSERT INTO {self._s}.queue (task_id, ready_at) VALUES ($2, {_NOW} + $3)
                    ON CONFLICT (task_id) DO NOTHING RETURNING 1)
                SELECT pg_notify($4, '') FROM added""",
            task_id,
            delay,
            self._channel,
        )

    async def _take(self, lease: float) -> Lease | None:
        rows = await self._fetch(
            f"""WITH next AS (
                    SELECT task_id FROM {self._s}.queue
                    WHERE token IS NULL AND ready_at <= {_NOW}
                    ORDER BY ready_at, position LIMIT 1 FOR UPDATE SKIP LOCKED)
                UPDATE {self._s}.queue AS q
                SET token = nextval('{self._s}.lease_token'), expires = {_NOW} + $2
                FROM next WHERE q.task_id = next.task_id
                RETURNING q.task_id, q.token, q.expires""",
            lease,
        )
        return Lease(rows[0]["task_id"], rows[0]["token"], rows[0]["expires"]) if rows else None

    async def _next_due(self) -> float | None:
        rows = await self._fetch(
            f"SELECT min(ready_at) - {_NOW} AS due FROM {self._s}.queue WHERE token IS NULL"
        )
        due: float | None = rows[0]["due"]
        return due

    async def claim(self, *, lease: float, wait: float | None = None) -> Lease | None:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(woken)  # before looking, so a NOTIFY in between is not lost
            try:
                await self._keep_listening()
                if (held := await self._take(lease)) is not None:
                    return held
                timeout = self._poll
                if (due := await self._next_due()) is not None:
                    timeout = min(timeout, max(0.0, due))
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    timeout = min(timeout, left)
                try:
                    await asyncio.wait_for(woken, timeout)
                except TimeoutError:
                    pass
            finally:
                self._waiters.discard(woken)

    async def heartbeat(self, lease: Lease, *, extend: float) -> Lease:
        rows = await self._fetch(
            f"""UPDATE {self._s}.queue SET expires = {_NOW} + $4
                WHERE task_id = $2 AND token = $3 AND expires >= {_NOW} RETURNING expires""",
            lease.task_id,
            lease.token,
            extend,
        )
        if not rows:
            raise LeaseLost(lease)
        return Lease(lease.task_id, lease.token, rows[0]["expires"])

    async def complete(self, lease: Lease) -> None:
        rows = await self._fetch(
            f"""DELETE FROM {self._s}.queue
                WHERE task_id = $2 AND token = $3 AND expires >= {_NOW} RETURNING 1""",
            lease.task_id,
            lease.token,
        )
        if not rows:
            raise LeaseLost(lease)

    async def fail(self, lease: Lease, *, retry_in: float | None) -> None:
        if retry_in is None:
            await self.complete(lease)
            return
        rows = await self._fetch(
            f"""WITH requeued AS (
                    UPDATE {self._s}.queue
                    SET token = NULL, expires = NULL, ready_at = {_NOW} + $4,
                        position = nextval('{self._s}.queue_order')
                    WHERE task_id = $2 AND token = $3 AND expires >= {_NOW} RETURNING 1)
                SELECT pg_notify($5, '') FROM requeued""",
            lease.task_id,
            lease.token,
            retry_in,
            self._channel,
        )
        if not rows:
            raise LeaseLost(lease)

    async def reclaim_expired(self) -> int:
        rows = await self._fetch(
            f"""WITH freed AS (
                    UPDATE {self._s}.queue
                    SET token = NULL, expires = NULL, ready_at = {_NOW},
                        position = nextval('{self._s}.queue_order')
                    WHERE token IS NOT NULL AND expires < {_NOW} RETURNING 1)
                SELECT count(*) AS n FROM freed"""
        )
        n: int = rows[0]["n"]
        if n and self._pool is not None:
            await self._pool.execute("SELECT pg_notify($1, '')", self._channel)
        return n

    async def counts(self) -> dict[str, int]:
        rows = await self._fetch(
            f"""SELECT
                    count(*) FILTER (WHERE token IS NULL AND ready_at <= {_NOW}) AS queued,
                    count(*) FILTER (WHERE token IS NULL AND ready_at > {_NOW}) AS delayed,
                    count(*) FILTER (WHERE token IS NOT NULL) AS leased
                FROM {self._s}.queue"""
        )
        return {k: int(rows[0][k]) for k in ("queued", "delayed", "leased")}
