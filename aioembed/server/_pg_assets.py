"""Assets and multipart upload sessions in PostgreSQL, so every replica sees them (operator mode).

The same records and rules as :class:`~._asset_store.AssetStore` and
:class:`~._upload_store.UploadStore` (SQLite, one server), in the operator
schema. The secret that signs part URLs lives here too
(:func:`shared_upload_secret`), so a URL one replica handed out is valid on
every other: a client whose replica died goes on through another. Needs the
``aioembed[scale]`` extra (asyncpg).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import attrs

from ._asset_store import AssetRecord
from ._upload_store import ChunkRecord, UploadRecord

__all__ = ["PostgresAssetStore", "PostgresUploadStore", "shared_upload_secret"]

_A = [f.name for f in attrs.fields(AssetRecord)]
_U = [f.name for f in attrs.fields(UploadRecord)]
_C = [f.name for f in attrs.fields(ChunkRecord)]
_JSON = {"user_metadata", "technical"}


def _schema_sql(s: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE IF NOT EXISTS {s}.assets (
        id text PRIMARY KEY, owner text NOT NULL, method text NOT NULL, status text NOT NULL,
        filename text, file_type text, kind text, created_at float8 NOT NULL,
        updated_at float8 NOT NULL, user_metadata text, size bigint, duration float8,
        technical text, error text
    );
    CREATE INDEX IF NOT EXISTS assets_owner ON {s}.assets (owner, created_at);
    CREATE TABLE IF NOT EXISTS {s}.uploads (
        id text PRIMARY KEY, owner text NOT NULL, asset_id text NOT NULL, filename text NOT NULL,
        kind text NOT NULL, total_size bigint NOT NULL, chunk_size bigint NOT NULL,
        total_chunks integer NOT NULL, status text NOT NULL, created_at float8 NOT NULL,
        updated_at float8 NOT NULL, expires_at float8 NOT NULL
    );
    CREATE INDEX IF NOT EXISTS uploads_owner ON {s}.uploads (owner, created_at);
    CREATE TABLE IF NOT EXISTS {s}.chunks (
        upload_id text NOT NULL, idx integer NOT NULL, status text NOT NULL, etag text,
        size bigint, signature text, reported integer NOT NULL DEFAULT 0,
        uploaded_at float8, updated_at float8 NOT NULL, error text,
        PRIMARY KEY (upload_id, idx)
    );
    CREATE TABLE IF NOT EXISTS {s}.secrets (name text PRIMARY KEY, value bytea NOT NULL);
    CREATE TABLE IF NOT EXISTS {s}.s3_uploads (
        upload_id text PRIMARY KEY, s3_upload_id text NOT NULL
    );
    """


def _upsert(table: str, columns: list[str], key: str) -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key.split(", "))
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


class _PgTables:
    """A pool on ``dsn`` and the asset/upload tables in ``schema`` (created at open)."""

    def __init__(self, dsn: str, *, schema: str) -> None:
        self._dsn, self._s = dsn, schema
        self._pool: asyncpg.Pool | None = None

    @property
    def _db(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__} is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4, timeout=30)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._s)
            await conn.execute(_schema_sql(self._s))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _asset(row: asyncpg.Record) -> AssetRecord:
    values = {name: row[name] for name in _A}
    for name in _JSON:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    return AssetRecord(**values)


class PostgresAssetStore(_PgTables):
    """:class:`~._asset_store.AssetStore`'s methods over PostgreSQL."""

    async def put(self, rec: AssetRecord) -> None:
        values = [
            json.dumps(getattr(rec, n)) if n in _JSON and getattr(rec, n) is not None
            else getattr(rec, n)
            for n in _A
        ]  # fmt: skip
        await self._db.execute(_upsert(f"{self._s}.assets", _A, "id"), *values)

    async def get(self, asset_id: str, *, owner: str | None = None) -> AssetRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {', '.join(_A)} FROM {self._s}.assets WHERE id = $1", asset_id
        )
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return _asset(row)

    async def delete(self, asset_id: str) -> None:
        await self._db.execute(f"DELETE FROM {self._s}.assets WHERE id = $1", asset_id)

    async def ids(self) -> set[str]:
        return {r["id"] for r in await self._db.fetch(f"SELECT id FROM {self._s}.assets")}

    async def page(
        self,
        owner: str,
        *,
        ids: Sequence[str],
        kinds: Sequence[str],
        filename: str | None,
        offset: int,
        limit: int,
    ) -> tuple[list[AssetRecord], int]:
        """Newest first, filtered; also the total matching."""
        escaped = None
        if filename:
            escaped = filename.lower().replace("\\", "\\\\").replace("%", "\\%")
            escaped = "%" + escaped.replace("_", "\\_") + "%"
        cond = (
            "owner = $1 AND (cardinality($2::text[]) = 0 OR id = ANY($2)) "
            "AND (cardinality($3::text[]) = 0 OR kind = ANY($3)) "
            "AND ($4::text IS NULL OR lower(filename) LIKE $4 ESCAPE '\\')"
        )
        args: list[Any] = [owner, list(ids), list(kinds), escaped]
        async with self._db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            total = await conn.fetchval(
                f"SELECT count(*) FROM {self._s}.assets WHERE {cond}", *args
            )
            rows = await conn.fetch(
                f"SELECT {', '.join(_A)} FROM {self._s}.assets WHERE {cond} "
                "ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
                *args,
                limit,
                offset,
            )
        return [_asset(r) for r in rows], int(total)


class PostgresUploadStore(_PgTables):
    """:class:`~._upload_store.UploadStore`'s methods over PostgreSQL."""

    async def put(self, rec: UploadRecord) -> None:
        sql = _upsert(f"{self._s}.uploads", _U, "id")
        await self._db.execute(sql, *(getattr(rec, n) for n in _U))

    async def get(self, upload_id: str, *, owner: str | None = None) -> UploadRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {', '.join(_U)} FROM {self._s}.uploads WHERE id = $1", upload_id
        )
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return UploadRecord(*row)

    async def page(self, owner: str, offset: int, limit: int) -> tuple[list[UploadRecord], int]:
        """Sessions not completed (``active``, ``failed``), newest first."""
        cond = "owner = $1 AND status IN ('active', 'failed')"
        async with self._db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            total = await conn.fetchval(
                f"SELECT count(*) FROM {self._s}.uploads WHERE {cond}", owner
            )
            rows = await conn.fetch(
                f"SELECT {', '.join(_U)} FROM {self._s}.uploads WHERE {cond} "
                "ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
                owner,
                limit,
                offset,
            )
        return [UploadRecord(*r) for r in rows], int(total)

    async def expired(self, now: float) -> list[UploadRecord]:
        rows = await self._db.fetch(
            f"SELECT {', '.join(_U)} FROM {self._s}.uploads "
            "WHERE expires_at < $1 AND status != 'expired'",
            now,
        )
        return [UploadRecord(*r) for r in rows]

    async def ids(self) -> set[str]:
        rows = await self._db.fetch(
            f"SELECT id FROM {self._s}.uploads WHERE status IN ('active', 'completed')"
        )
        return {r["id"] for r in rows}

    async def chunk(self, upload_id: str, idx: int) -> ChunkRecord | None:
        row = await self._db.fetchrow(
            f"SELECT {', '.join(_C)} FROM {self._s}.chunks WHERE upload_id = $1 AND idx = $2",
            upload_id,
            idx,
        )
        return None if row is None else ChunkRecord(*row)

    async def chunks(self, upload_id: str) -> dict[int, ChunkRecord]:
        rows = await self._db.fetch(
            f"SELECT {', '.join(_C)} FROM {self._s}.chunks WHERE upload_id = $1", upload_id
        )
        return {r["idx"]: ChunkRecord(*r) for r in rows}

    async def put_chunk(self, rec: ChunkRecord) -> None:
        await self.put_chunks([rec])

    async def put_chunks(self, recs: list[ChunkRecord]) -> None:
        sql = _upsert(f"{self._s}.chunks", _C, "upload_id, idx")
        await self._db.executemany(sql, [[getattr(r, n) for n in _C] for r in recs])

    async def delete(self, upload_id: str) -> None:
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute(f"DELETE FROM {self._s}.chunks WHERE upload_id = $1", upload_id)
            await conn.execute(f"DELETE FROM {self._s}.uploads WHERE id = $1", upload_id)

    @contextlib.asynccontextmanager
    async def serialised(self, upload_id: str) -> AsyncIterator[None]:
        """One report or join of a session at a time across every replica: a session
        advisory lock, held on its own connection for the block."""
        async with self._db.acquire() as conn:
            key = f"{self._s}.upload:{upload_id}"
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", key)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)

    # -- the S3 multipart upload of each session (S3PartStore's UploadIds) ------------

    async def s3_upload(self, upload_id: str, proposed: str) -> str:
        await self._db.execute(
            f"INSERT INTO {self._s}.s3_uploads (upload_id, s3_upload_id) VALUES ($1, $2) "
            "ON CONFLICT (upload_id) DO NOTHING",
            upload_id,
            proposed,
        )
        found = await self.s3_upload_of(upload_id)
        assert found is not None  # inserted now or before, never deleted in between
        return found

    async def s3_upload_of(self, upload_id: str) -> str | None:
        found = await self._db.fetchval(
            f"SELECT s3_upload_id FROM {self._s}.s3_uploads WHERE upload_id = $1", upload_id
        )
        return None if found is None else str(found)

    async def forget_s3_upload(self, upload_id: str) -> None:
        await self._db.execute(f"DELETE FROM {self._s}.s3_uploads WHERE upload_id = $1", upload_id)

    async def shared_secret(self) -> bytes:
        """:func:`shared_upload_secret` on this store's database."""
        return await shared_upload_secret(self._db, self._s)


async def shared_upload_secret(db: asyncpg.Pool, schema: str) -> bytes:
    """The part-URL signing secret every replica uses: made by the first, read by the rest."""
    await db.execute(
        f"INSERT INTO {schema}.secrets (name, value) VALUES ('upload', $1) "
        "ON CONFLICT (name) DO NOTHING",
        secrets.token_bytes(32),
    )
    value: bytes = await db.fetchval(f"SELECT value FROM {schema}.secrets WHERE name = 'upload'")
    return value
