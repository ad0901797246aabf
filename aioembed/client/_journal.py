"""A batch's memory on disk, so a crashed or interrupted batch resumes exactly.

Before a create is sent its idempotency key is committed here; after it returns
the task id is. A rerun therefore either skips the create (id known) or repeats
it with the same key (the server answers with the original id): no re-upload of
created tasks and no duplicate tasks, whenever the previous run died.

A journal path is user input (``--journal v.mp4`` happens), so this module only
ever creates a file where there is none, and reuses or removes only a file that
is recognisably a journal: an SQLite database whose ``aioembed_journal`` table
holds :data:`MAGIC`. Anything else raises :class:`~aioembed.JournalError` with
nothing touched. A new journal is built under a temporary name and linked into
place, so the path never holds half a journal.
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

from ..errors import JournalError

__all__ = ["MAGIC", "Journal", "JournalEntry"]

#: What the header table holds: a file without it is not ours to write or delete.
MAGIC = "aioembed-journal"
#: 2 added ``api`` (a v1 entry is never resumed as v2) and ``asset_id``; a version 1
#: journal is upgraded in place when opened.
VERSION = 2
#: Seconds SQLite waits for another process's lock before the journal counts as busy.
LOCK_TIMEOUT = 1.0
_SQLITE_HEADER = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = f"""
CREATE TABLE aioembed_journal (magic TEXT NOT NULL, version INTEGER NOT NULL);
INSERT INTO aioembed_journal VALUES ('{MAGIC}', {VERSION});
CREATE TABLE items (
    key TEXT PRIMARY KEY,
    input TEXT NOT NULL,
    content_hash TEXT,
    idempotency_key TEXT NOT NULL,
    task_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    error_code TEXT,
    error_message TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    api TEXT NOT NULL DEFAULT 'v1',
    asset_id TEXT
);
"""


def _upgrade(db: sqlite3.Connection) -> None:
    """Version 1 -> 2 in one transaction; a run that upgraded it meanwhile is fine."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT version FROM aioembed_journal").fetchone()[0] == 1:
            db.execute("ALTER TABLE items ADD COLUMN api TEXT NOT NULL DEFAULT 'v1'")
            db.execute("ALTER TABLE items ADD COLUMN asset_id TEXT")
            db.execute("UPDATE aioembed_journal SET version = ?", (VERSION,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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
    #: The API the task was created with (``"v1"`` / ``"v2"``).
    api: str = "v1"
    #: An asset the batch uploaded for this item and has not deleted yet (v2).
    asset_id: str | None = None


def _error(path: Path, e: sqlite3.Error) -> JournalError:
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return JournalError(
            f"journal {path} is locked by another run; wait for it to finish, or pass "
            "another journal path",
            path=str(path),
        )
    return JournalError(
        f"journal {path} cannot be used ({e}); if no run is using it, remove it "
        "(and its -wal/-shm files) to start the batch afresh, or pass another journal path",
        path=str(path),
    )


def _not_ours(path: Path, what: str) -> JournalError:
    return JournalError(
        f"{path} {what}, not an aioembed journal; it was left untouched. Pass a new "
        "journal path (a file that does not exist yet).",
        path=str(path),
    )


def _check_ours(path: Path, db: sqlite3.Connection) -> int:
    """Raises unless ``path`` is an aioembed journal; returns its format version."""
    header = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'aioembed_journal'"
    if not db.execute(header).fetchall():
        raise _not_ours(path, "is an SQLite database")
    rows = db.execute("SELECT magic, version FROM aioembed_journal").fetchall()
    if not rows or rows[0][0] != MAGIC:
        raise _not_ours(path, "is an SQLite database")
    if rows[0][1] not in (1, VERSION):
        raise JournalError(
            f"journal {path} has format version {rows[0][1]}, this aioembed reads {VERSION}; "
            "finish that batch with the aioembed that started it, or remove the journal",
            path=str(path),
        )
    return int(rows[0][1])


def _sniff(path: Path) -> bool:
    """Whether ``path`` exists; raises if it exists and is not an SQLite file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if not path.is_file():
        raise _not_ours(path, "is not a regular file")
    with path.open("rb") as f:
        if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            raise _not_ours(path, f"exists ({st.st_size} bytes)")
    return True


def _create(path: Path) -> None:
    """A complete new journal at ``path``, or an error if something appeared there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.executescript(_SCHEMA)
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        try:
            os.link(tmp, path)  # never replaces: a file that appeared meanwhile is kept
        except FileExistsError:
            _sniff(path)
    finally:
        for suffix in ("", *_SIDE_FILES):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    if not _sniff(path):
        _create(path)
    uri = f"{path.resolve().as_uri()}?mode=rw"
    db = sqlite3.connect(
        uri, uri=True, check_same_thread=False, isolation_level=None, timeout=LOCK_TIMEOUT
    )
    try:
        version = _check_ours(path, db)  # before any write, a PRAGMA included
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if version == 1:
            _upgrade(db)
    except BaseException:
        db.close()
        raise
    return db


class Journal:
    """SQLite (WAL) file of item states; every call runs on a worker thread.

    Every failure (not a journal, corrupt, locked by another run for more than
    :data:`LOCK_TIMEOUT` seconds) raises :class:`~aioembed.JournalError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._db is None:
                    self._db = _connect(self.path)
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise _error(self.path, e) from e
            except OSError as e:
                raise JournalError(
                    f"journal {self.path} cannot be opened: {e.strerror}", path=str(self.path)
                ) from e

    async def _call(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(self._run, sql, args)

    async def open(self) -> None:
        """Open (creating if absent) and check the journal: errors surface here, early."""
        await self._call("SELECT 1")

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await anyio.to_thread.run_sync(close)

    @staticmethod
    def remove(path: str | os.PathLike[str]) -> bool:
        """Delete the journal at ``path`` and its side files; ``False`` if there was none.

        Raises :class:`~aioembed.JournalError` (deleting nothing) if ``path`` holds
        anything but an aioembed journal. Blocking: call it off the event loop.
        """
        p = Path(path)
        try:
            if not _sniff(p):
                return False
            db = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, timeout=LOCK_TIMEOUT)
            try:
                _check_ours(p, db)
            finally:
                db.close()
        except sqlite3.Error as e:
            raise _error(p, e) from e
        p.unlink()
        for suffix in _SIDE_FILES:
            Path(f"{p}{suffix}").unlink(missing_ok=True)
        return True

    async def begin(
        self, key: str, input: str, content_hash: str | None, *, api: str = "v1"
    ) -> JournalEntry:
        """The item's entry, creating it (with a fresh idempotency key) if new.

        An existing entry keeps the ``api`` it was made with: the caller compares.
        """
        await self._call(
            "INSERT OR IGNORE INTO items (key, input, content_hash, idempotency_key, api) "
            "VALUES (?, ?, ?, ?, ?)",
            key,
            input,
            content_hash,
            uuid.uuid4().hex,
            api,
        )
        entry = await self.get(key)
        assert entry is not None
        return entry

    async def reset(self, key: str) -> JournalEntry:
        """Forget the item's task so it is created afresh, under a new idempotency key
        (an uploaded asset is kept: the new task can use it)."""
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
            "error_message, api, asset_id FROM items WHERE key = ?",
            key,
        )
        if not rows:
            return None
        key_, input_, content_hash, idem, task_id, status, code, message, api, asset = rows[0]
        return JournalEntry(
            key=key_,
            input=input_,
            content_hash=content_hash,
            idempotency_key=idem,
            task_id=task_id,
            status=status,
            error_code=code,
            error_message=message,
            api=api,
            asset_id=asset,
        )

    async def set_task(self, key: str, task_id: str) -> None:
        await self._call(
            "UPDATE items SET task_id = ?, status = 'processing', "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE key = ?",
            task_id,
            key,
        )

    async def set_asset(self, key: str, asset_id: str | None) -> None:
        """Record the asset uploaded for the item (``None``: deleted, or none)."""
        await self._call("UPDATE items SET asset_id = ? WHERE key = ?", asset_id, key)

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
