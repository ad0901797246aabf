"""A batch's memory on disk, so a crashed or interrupted batch resumes exactly.

Before a create is sent its idempotency key is committed here; after it returns
the task id is. A rerun therefore either skips the create (id known) or repeats
it with the same key (the server answers with the original id): no re-upload of
created tasks and no duplicate tasks, whenever the previous run died.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

__all__ = ["Journal", "JournalEntry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    input TEXT NOT NULL,
    content_hash TEXT,
    idempotency_key TEXT NOT NULL,
    task_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    error_code TEXT,
    error_message TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
)
"""


@attrs.frozen
class JournalEntry:
    key: str
    input: str
    content_hash: str | None
    idempotency_key: str
    task_id: str | None
    status: str
    error_code: str | None
    error_message: str | None


class Journal:
    """SQLite (WAL) file of item states; every call runs on a worker thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._db is None:
                self._db = self._connect()
            return self._db.execute(sql, args).fetchall()

    async def _call(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(self._run, sql, args)

    async def open(self) -> None:
        await self._call("SELECT 1")

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await anyio.to_thread.run_sync(close)

    async def begin(self, key: str, input: str, content_hash: str | None) -> JournalEntry:
        """The item's entry, creating it (with a fresh idempotency key) if new."""
        await self._call(
            "INSERT OR IGNORE INTO items (key, input, content_hash, idempotency_key) "
            "VALUES (?, ?, ?, ?)",
            key,
            input,
            content_hash,
            uuid.uuid4().hex,
        )
        entry = await self.get(key)
        assert entry is not None
        return entry

    async def reset(self, key: str) -> JournalEntry:
        """Forget the item's task so it is created afresh, under a new idempotency key."""
        await self._call(
            "UPDATE items SET task_id = NULL, status = 'pending', error_code = NULL, "
            "error_message = NULL, idempotency_key = ? WHERE key = ?",
            uuid.uuid4().hex,
            key,
        )
        entry = await self.get(key)
        assert entry is not None
        return entry

    async def get(self, key: str) -> JournalEntry | None:
        rows = await self._call(
            "SELECT key, input, content_hash, idempotency_key, task_id, status, error_code, "
            "error_message FROM items WHERE key = ?",
            key,
        )
        if not rows:
            return None
        key_, input_, content_hash, idem, task_id, status, code, message = rows[0]
        return JournalEntry(
            key=key_,
            input=input_,
            content_hash=content_hash,
            idempotency_key=idem,
            task_id=task_id,
            status=status,
            error_code=code,
            error_message=message,
        )

    async def set_task(self, key: str, task_id: str) -> None:
        await self._call(
            "UPDATE items SET task_id = ?, status = 'processing', "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE key = ?",
            task_id,
            key,
        )

    async def set_status(
        self, key: str, status: str, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        await self._call(
            "UPDATE items SET status = ?, error_code = ?, error_message = ?, "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE key = ?",
            status,
            error_code,
            error_message,
            key,
        )

    async def counts(self) -> dict[str, int]:
        rows = await self._call("SELECT status, count(*) FROM items GROUP BY status")
        return {str(s): int(n) for s, n in rows}
