"""The :class:`~._store.Store` seam in PostgreSQL, shared by server replicas and workers.

The same tables and rules as :class:`~._store.SqliteStore` (results commit with
the status in one transaction; a terminal task never changes again), with the
database's clock for every timestamp so hosts with skewed clocks agree on
ordering and idempotency windows. Beside a :class:`~._pg_queue.PostgresQueue`
in the same schema it is a :class:`~._fenced.FencedStore`: a task's result and
the release of its lease commit in one transaction, fenced by the lease token. Concurrent creates with one idempotency key
from two replicas are serialised by a transaction-scoped advisory lock on
``(owner, key)``. Needs the ``aioembed[scale]`` extra (asyncpg).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from ._pg_queue import PostgresQueue
from ._queue import Lease, LeaseLost, TaskQueue
from ._store import (
    STATUSES,
    TASK_COLUMNS,
    NewTask,
    SegmentRecord,
    StorageFullError,
    TaskRecord,
    task_record,
)

__all__ = ["PostgresStore"]

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_CLOCK = "extract(epoch from clock_timestamp())::float8"


def _schema_sql(s: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE IF NOT EXISTS {s}.tasks (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        owner text NOT NULL,
        model_name text NOT NULL,
        status text NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
        created_at float8 NOT NULL,
        updated_at float8 NOT NULL,
        clip_length float8 NOT NULL,
        scopes text[] NOT NULL,
        options text[] NOT NULL,
        start_sec float8 NOT NULL DEFAULT 0,
        end_sec float8,
        input_url text,
        input_filename text,
        duration float8,
        clips_done integer,
        clips_total integer,
        error_code text,
        error_message text,
        attempts integer NOT NULL DEFAULT 0,
        media_sha256 text,
        media_size bigint,
        spec text,
        result_meta text
    );
    ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS spec text;
    ALTER TABLE {s}.tasks ADD COLUMN IF NOT EXISTS result_meta text;
    CREATE INDEX IF NOT EXISTS tasks_owner_created ON {s}.tasks (owner, created_at DESC, seq DESC);
    CREATE INDEX IF NOT EXISTS tasks_status ON {s}.tasks (status, seq);
    CREATE TABLE IF NOT EXISTS {s}.segments (
        task_id text NOT NULL REFERENCES {s}.tasks (id) ON DELETE CASCADE,
        idx integer NOT NULL,
        start_sec float8 NOT NULL,
        end_sec float8 NOT NULL,
        scope text NOT NULL,
        option text NOT NULL,
        vector bytea NOT NULL,
        uncertainty bytea,
        PRIMARY KEY (task_id, idx)
    );
    ALTER TABLE {s}.segments ADD COLUMN IF NOT EXISTS uncertainty bytea;
    CREATE TABLE IF NOT EXISTS {s}.idempotency (
        owner text NOT NULL,
        key text NOT NULL,
        task_id text NOT NULL REFERENCES {s}.tasks (id) ON DELETE CASCADE,
        created_at float8 NOT NULL,
        PRIMARY KEY (owner, key)
    );
    """


class PostgresStore:
    """:class:`~._store.Store` on a PostgreSQL database; tables in ``schema``."""

    def __init__(self, dsn: str, *, schema: str = "aioembed", pool_size: int = 4) -> None:
        if not _IDENT.fullmatch(schema):
            raise ValueError(f"schema must match {_IDENT.pattern}, got {schema!r}")
        self._dsn, self._s, self._pool_size = dsn, schema, pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=1, max_size=self._pool_size, timeout=30
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._s)
            await conn.execute(_schema_sql(self._s))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _execute(self, sql: str, *args: object) -> str:
        try:
            status: str = await self._db.execute(sql, *args)
        except asyncpg.DiskFullError as e:
            raise StorageFullError(str(e)) from e
        return status

    # -- writes -----------------------------------------------------------------

    async def create_task(self, task: NewTask, *, idempotency_key: str | None = None) -> str:
        s = self._s
        try:
            async with self._db.acquire() as conn, conn.transaction():
                if idempotency_key is not None:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
                        task.owner,
                        idempotency_key,
                    )
                    found = await conn.fetchval(
                        f"SELECT task_id FROM {s}.idempotency WHERE owner = $1 AND key = $2",
                        task.owner,
                        idempotency_key,
                    )
                    if found is not None:
                        return str(found)
                await conn.execute(
                    f"INSERT INTO {s}.tasks (id, owner, model_name, status, created_at, "
                    "updated_at, clip_length, scopes, options, start_sec, end_sec, input_url, "
                    "input_filename, duration, media_sha256, media_size, spec) VALUES ($1, $2, $3, "
                    f"'processing', {_CLOCK}, {_CLOCK}, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                    "$13, $14)",
                    task.id,
                    task.owner,
                    task.model_name,
                    task.clip_length,
                    list(task.scopes),
                    list(task.options),
                    task.start,
                    task.end,
                    task.input_url,
                    task.input_filename,
                    task.duration,
                    task.media_sha256,
                    task.media_size,
                    task.spec,
                )
                if idempotency_key is not None:
                    await conn.execute(
                        f"INSERT INTO {s}.idempotency (owner, key, task_id, created_at) "
                        f"VALUES ($1, $2, $3, {_CLOCK})",
                        task.owner,
                        idempotency_key,
                        task.id,
                    )
        except asyncpg.DiskFullError as e:
            raise StorageFullError(str(e)) from e
        return task.id

    async def start_attempt(self, task_id: str) -> int:
        attempts = await self._db.fetchval(
            f"UPDATE {self._s}.tasks SET attempts = attempts + 1, clips_done = NULL, "
            "clips_total = NULL WHERE id = $1 AND status = 'processing' RETURNING attempts",
            task_id,
        )
        return 0 if attempts is None else int(attempts)

    async def set_progress(self, task_id: str, done: int, total: int) -> None:
        await self._execute(
            f"UPDATE {self._s}.tasks SET clips_done = $1, clips_total = $2 "
            "WHERE id = $3 AND status = 'processing'",
            done,
            total,
            task_id,
        )

    async def set_duration(self, task_id: str, duration: float) -> None:
        await self._execute(
            f"UPDATE {self._s}.tasks SET duration = $1, updated_at = {_CLOCK} WHERE id = $2",
            duration,
            task_id,
        )

    async def finish_ready(
        self,
        task_id: str,
        segments: Sequence[SegmentRecord],
        *,
        duration: float | None,
        result_meta: str | None = None,
    ) -> None:
        async with self._writing() as conn:
            await self._write_ready(conn, task_id, segments, duration, result_meta)

    async def finish_failed(self, task_id: str, code: str, message: str) -> None:
        async with self._writing() as conn:
            await self._write_failed(conn, task_id, code, message)

    # -- fenced by the queue's lease (FencedStore) ---------------------------------

    def fences(self, queue: TaskQueue) -> bool:
        return isinstance(queue, PostgresQueue) and queue.shares(self._dsn, self._s)

    async def finish_ready_fenced(
        self,
        lease: Lease,
        segments: Sequence[SegmentRecord],
        *,
        duration: float | None,
        result_meta: str | None = None,
    ) -> None:
        async with self._writing() as conn:
            await self._release(conn, lease)
            await self._write_ready(conn, lease.task_id, segments, duration, result_meta)

    async def finish_failed_fenced(self, lease: Lease, code: str, message: str) -> None:
        async with self._writing() as conn:
            await self._release(conn, lease)
            await self._write_failed(conn, lease.task_id, code, message)

    async def _release(self, conn: asyncpg.Connection, lease: Lease) -> None:
        # The token alone is the fence: a re-claim gives the row a new token, a reclaim
        # clears it, so a match means nobody else ran or runs the task since this claim.
        # (An expired lease nobody reclaimed yet may still finish: no one else holds it.)
        held = await conn.fetchval(
            f"DELETE FROM {self._s}.queue WHERE task_id = $1 AND token = $2 RETURNING 1",
            lease.task_id,
            lease.token,
        )
        if held is None:
            raise LeaseLost(lease)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on one connection; a full disk is :class:`StorageFullError`."""
        try:
            async with self._db.acquire() as conn, conn.transaction():
                yield conn
        except asyncpg.DiskFullError as e:
            raise StorageFullError(str(e)) from e

    async def _write_ready(
        self,
        conn: asyncpg.Connection,
        task_id: str,
        segments: Sequence[SegmentRecord],
        duration: float | None,
        result_meta: str | None,
    ) -> None:
        s = self._s
        # Only a task still processing takes results: a late finisher changes nothing.
        done = await conn.fetchval(
            f"UPDATE {s}.tasks SET status = 'ready', updated_at = {_CLOCK}, "
            "duration = COALESCE($1, duration), clips_done = NULL, clips_total = NULL, "
            "error_code = NULL, error_message = NULL, result_meta = $3 "
            "WHERE id = $2 AND status = 'processing' RETURNING 1",
            duration,
            task_id,
            result_meta,
        )
        if done is None:
            return
        await conn.execute(f"DELETE FROM {s}.segments WHERE task_id = $1", task_id)
        await conn.executemany(
            f"INSERT INTO {s}.segments (task_id, idx, start_sec, end_sec, scope, "
            "option, vector, uncertainty) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                (task_id, i, g.start, g.end, g.scope, g.option, g.vector, g.uncertainty)
                for i, g in enumerate(segments)
            ],
        )

    async def _write_failed(
        self, conn: asyncpg.Connection, task_id: str, code: str, message: str
    ) -> None:
        await conn.execute(
            f"UPDATE {self._s}.tasks SET status = 'failed', updated_at = {_CLOCK}, "
            "error_code = $1, error_message = $2, clips_done = NULL, clips_total = NULL "
            "WHERE id = $3 AND status = 'processing'",
            code,
            message,
            task_id,
        )

    async def prune_idempotency(self, older_than: float) -> int:
        status = await self._execute(
            f"DELETE FROM {self._s}.idempotency WHERE created_at < $1", older_than
        )
        return int(status.split()[-1])

    # -- reads ------------------------------------------------------------------

    async def find_idempotent(self, owner: str, key: str, *, max_age: float) -> str | None:
        found = await self._db.fetchval(
            f"SELECT task_id FROM {self._s}.idempotency WHERE owner = $1 AND key = $2 "
            f"AND created_at >= {_CLOCK} - $3",
            owner,
            key,
            max_age,
        )
        return None if found is None else str(found)

    async def get_task(self, task_id: str, *, owner: str | None = None) -> TaskRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {TASK_COLUMNS} FROM {self._s}.tasks WHERE id = $1", task_id
        )
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return task_record(row, tuple)

    async def list_tasks(
        self,
        owner: str,
        *,
        statuses: Sequence[str] = (),
        created_from: float | None = None,
        created_to: float | None = None,
        offset: int = 0,
        limit: int = 10,
        api: str = "v1",
    ) -> tuple[list[TaskRecord], int]:
        version = "spec IS NULL" if api == "v1" else "spec IS NOT NULL"
        clause = (
            f"owner = $1 AND {version} AND (cardinality($2::text[]) = 0 OR status = ANY($2)) "
            "AND ($3::float8 IS NULL OR created_at >= $3) "
            "AND ($4::float8 IS NULL OR created_at <= $4)"
        )
        args: list[Any] = [owner, list(statuses), created_from, created_to]
        async with self._db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            total = await conn.fetchval(
                f"SELECT count(*) FROM {self._s}.tasks WHERE {clause}", *args
            )
            rows = await conn.fetch(
                f"SELECT {TASK_COLUMNS} FROM {self._s}.tasks WHERE {clause} "
                "ORDER BY created_at DESC, seq DESC LIMIT $5 OFFSET $6",
                *args,
                limit,
                offset,
            )
        return [task_record(r, tuple) for r in rows], int(total)

    async def get_segments(
        self, task_id: str, *, options: Sequence[str] | None = None
    ) -> list[SegmentRecord]:
        rows = await self._db.fetch(
            "SELECT start_sec, end_sec, scope, option, vector, uncertainty FROM "
            f"{self._s}.segments WHERE task_id = $1 "
            "AND ($2::text[] IS NULL OR option = ANY($2)) ORDER BY idx",
            task_id,
            None if options is None else list(options),
        )
        return [SegmentRecord(*row) for row in rows]

    async def processing_ids(self) -> list[str]:
        rows = await self._db.fetch(
            f"SELECT id FROM {self._s}.tasks WHERE status = 'processing' ORDER BY seq"
        )
        return [str(r["id"]) for r in rows]

    async def status_counts(self, *, owner: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in await self._db.fetch(
            f"SELECT status, count(*) AS n FROM {self._s}.tasks "
            "WHERE $1::text IS NULL OR owner = $1 GROUP BY status",
            owner,
        ):
            counts[str(row["status"])] = int(row["n"])
        return counts
