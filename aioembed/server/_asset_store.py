"""Asset records (``/assets``): one SQLite file beside the task store, ``assets.sqlite3``.

Kept apart from :class:`~._store.Store` so the asset feature does not widen
that seam; every call runs in the default executor (nothing blocks the loop).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import attrs

from ._sqlite_file import SqliteFile

__all__ = ["AssetRecord", "AssetStore"]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    filename TEXT,
    file_type TEXT,
    kind TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    user_metadata TEXT,
    size INTEGER,
    duration REAL,
    technical TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS assets_owner ON assets (owner, created_at);
"""


@attrs.define
class AssetRecord:
    id: str
    owner: str
    method: str
    status: str
    filename: str | None
    file_type: str | None
    #: image | video | audio | document (what ``asset_types`` filters on).
    kind: str | None
    created_at: float
    updated_at: float
    user_metadata: dict[str, Any] | None = None
    size: int | None = None
    duration: float | None = None
    technical: dict[str, Any] | None = None
    error: str | None = None


_COLUMNS = [f.name for f in attrs.fields(AssetRecord)]
_JSON = {"user_metadata", "technical"}


def _row(row: Sequence[Any]) -> AssetRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in _JSON:
        if values[name] is not None:
            values[name] = json.loads(values[name])
    return AssetRecord(**values)


def _values(rec: AssetRecord) -> list[Any]:
    out = []
    for name in _COLUMNS:
        value = getattr(rec, name)
        out.append(json.dumps(value) if name in _JSON and value is not None else value)
    return out


class AssetStore(SqliteFile):
    """Durable asset records (WAL, one connection behind a lock)."""

    SCHEMA = _SCHEMA

    async def put(self, rec: AssetRecord) -> None:
        marks = ",".join("?" * len(_COLUMNS))
        sql = f"INSERT OR REPLACE INTO assets ({','.join(_COLUMNS)}) VALUES ({marks})"
        await self._run(lambda db: db.execute(sql, _values(rec)))

    async def get(self, asset_id: str, *, owner: str | None = None) -> AssetRecord | None:
        sql = f"SELECT {','.join(_COLUMNS)} FROM assets WHERE id = ?"
        args: list[Any] = [asset_id]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        row = await self._run(lambda db: db.execute(sql, args).fetchone())
        return None if row is None else _row(row)

    async def delete(self, asset_id: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM assets WHERE id = ?", (asset_id,)))

    async def ids(self) -> set[str]:
        rows = await self._run(lambda db: db.execute("SELECT id FROM assets").fetchall())
        return {r[0] for r in rows}

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
        where, args = ["owner = ?"], [owner]
        if ids:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            args.extend(kinds)
        if filename:
            escaped = filename.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("lower(filename) LIKE ? ESCAPE '\\'")
            args.append(f"%{escaped}%")
        cond = " AND ".join(where)

        def run(db: sqlite3.Connection) -> tuple[list[Any], int]:
            total = db.execute(f"SELECT count(*) FROM assets WHERE {cond}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {','.join(_COLUMNS)} FROM assets WHERE {cond} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return rows, int(total)

        rows, total = await self._run(run)
        return [_row(r) for r in rows], total
