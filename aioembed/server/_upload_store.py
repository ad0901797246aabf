"""Multipart upload sessions and their chunks: ``uploads.sqlite3`` in the data directory.

Durable, so a restarted server keeps every session (its part URLs stay valid:
the signing secret is persisted too). Calls run in the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import attrs

from ._sqlite_file import SqliteFile

__all__ = ["ChunkRecord", "UploadRecord", "UploadStore"]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, asset_id TEXT NOT NULL, filename TEXT NOT NULL,
    kind TEXT NOT NULL, total_size INTEGER NOT NULL, chunk_size INTEGER NOT NULL,
    total_chunks INTEGER NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_owner ON uploads (owner, created_at);
CREATE TABLE IF NOT EXISTS chunks (
    upload_id TEXT NOT NULL, idx INTEGER NOT NULL, status TEXT NOT NULL, etag TEXT,
    size INTEGER, signature TEXT, reported INTEGER NOT NULL DEFAULT 0,
    uploaded_at REAL, updated_at REAL NOT NULL, error TEXT,
    PRIMARY KEY (upload_id, idx)
);
"""


@attrs.define
class UploadRecord:
    id: str
    owner: str
    asset_id: str
    filename: str
    kind: str
    total_size: int
    chunk_size: int
    total_chunks: int
    #: active | completed | failed | expired
    status: str
    created_at: float
    updated_at: float
    expires_at: float

    def part_size(self, index: int) -> int:
        """The exact size chunk ``index`` (1-based) must have."""
        if index < self.total_chunks:
            return self.chunk_size
        return self.total_size - self.chunk_size * (self.total_chunks - 1)


@attrs.define
class ChunkRecord:
    upload_id: str
    idx: int
    #: uploaded (bytes here, not reported) | completed (reported) | failed
    status: str
    etag: str | None
    size: int | None
    signature: str | None
    reported: int
    uploaded_at: float | None
    updated_at: float
    error: str | None


_U = [f.name for f in attrs.fields(UploadRecord)]
_C = [f.name for f in attrs.fields(ChunkRecord)]


class UploadStore(SqliteFile):
    """Durable upload sessions and their chunks."""

    SCHEMA = _SCHEMA

    @contextlib.asynccontextmanager
    async def serialised(self, upload_id: str) -> AsyncIterator[None]:
        """One report or join of a session at a time (one server owns this file: a lock
        of this process does)."""
        lock = self.__dict__.setdefault("_serial", asyncio.Lock())
        async with lock:
            yield

    async def put(self, rec: UploadRecord) -> None:
        sql = f"INSERT OR REPLACE INTO uploads ({','.join(_U)}) VALUES ({','.join('?' * len(_U))})"
        await self._run(lambda db: db.execute(sql, [getattr(rec, n) for n in _U]))

    async def get(self, upload_id: str, *, owner: str | None = None) -> UploadRecord | None:
        sql, args = f"SELECT {','.join(_U)} FROM uploads WHERE id = ?", [upload_id]
        if owner is not None:
            sql, args = sql + " AND owner = ?", [*args, owner]
        row = await self._run(lambda db: db.execute(sql, args).fetchone())
        return None if row is None else UploadRecord(*row)

    async def page(self, owner: str, offset: int, limit: int) -> tuple[list[UploadRecord], int]:
        """Sessions not completed (``active``, ``failed``), newest first."""
        cond = "owner = ? AND status IN ('active', 'failed')"

        def run(db: sqlite3.Connection) -> tuple[list[Any], int]:
            total = db.execute(f"SELECT count(*) FROM uploads WHERE {cond}", [owner]).fetchone()
            rows = db.execute(
                f"SELECT {','.join(_U)} FROM uploads WHERE {cond} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [owner, limit, offset],
            ).fetchall()
            return rows, int(total[0])

        rows, total = await self._run(run)
        return [UploadRecord(*r) for r in rows], total

    async def expired(self, now: float) -> list[UploadRecord]:
        sql = f"SELECT {','.join(_U)} FROM uploads WHERE expires_at < ? AND status != 'expired'"
        rows = await self._run(lambda db: db.execute(sql, [now]).fetchall())
        return [UploadRecord(*r) for r in rows]

    async def ids(self) -> set[str]:
        sql = "SELECT id FROM uploads WHERE status IN ('active', 'completed')"
        rows = await self._run(lambda db: db.execute(sql).fetchall())
        return {r[0] for r in rows}

    async def chunk(self, upload_id: str, idx: int) -> ChunkRecord | None:
        sql = f"SELECT {','.join(_C)} FROM chunks WHERE upload_id = ? AND idx = ?"
        row = await self._run(lambda db: db.execute(sql, [upload_id, idx]).fetchone())
        return None if row is None else ChunkRecord(*row)

    async def chunks(self, upload_id: str) -> dict[int, ChunkRecord]:
        sql = f"SELECT {','.join(_C)} FROM chunks WHERE upload_id = ?"
        rows = await self._run(lambda db: db.execute(sql, [upload_id]).fetchall())
        return {r[1]: ChunkRecord(*r) for r in rows}

    async def put_chunk(self, rec: ChunkRecord) -> None:
        sql = f"INSERT OR REPLACE INTO chunks ({','.join(_C)}) VALUES ({','.join('?' * len(_C))})"
        await self._run(lambda db: db.execute(sql, [getattr(rec, n) for n in _C]))

    async def put_chunks(self, recs: list[ChunkRecord]) -> None:
        sql = f"INSERT OR REPLACE INTO chunks ({','.join(_C)}) VALUES ({','.join('?' * len(_C))})"
        await self._run(lambda db: db.executemany(sql, [[getattr(r, n) for n in _C] for r in recs]))

    async def delete(self, upload_id: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM chunks WHERE upload_id = ?", [upload_id])
            db.execute("DELETE FROM uploads WHERE id = ?", [upload_id])

        await self._run(run)
