"""Durable task state: the :class:`Store` interface and its SQLite implementation.

Handlers and the dispatcher talk to a :class:`Store` only, so another backend
(PostgreSQL) can be added without touching them.

:class:`SqliteStore` keeps everything in one database file in WAL mode:

* every write goes through one dedicated writer thread holding the only write
  connection, so writes are serialised without lock contention, and each
  mutating call is one transaction (a task's segments and its ``ready`` status
  commit together: a reader never sees half a result);
* reads go to a small pool of reader threads, each with its own connection
  (WAL lets them read while the writer writes);
* ``synchronous=FULL``: each commit fsyncs the WAL, so an ``_id`` that was
  returned survives not only ``kill -9`` (which ``NORMAL`` would also survive:
  the WAL is in the OS page cache) but a power cut too. Commits are few (one per
  create and per task end, progress writes are throttled), so the fsync is cheap.

No SQLite call ever runs on the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from ._private import private_file

__all__ = [
    "NewTask",
    "SegmentRecord",
    "SqliteStore",
    "StorageFullError",
    "Store",
    "TaskRecord",
    "new_task_id",
    "owner_of",
]

T = TypeVar("T")

STATUSES = ("processing", "ready", "failed")


def new_task_id() -> str:
    """24 lowercase hex characters, as the contract's ids."""
    return secrets.token_hex(12)


def owner_of(api_key: str) -> str:
    """What the store keeps instead of the key itself: a hash that scopes tasks to it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class StorageFullError(OSError):
    """A write failed because the storage is out of space (``errno`` ``ENOSPC``).

    Every :class:`Store` raises this for a full disk, whatever its engine says,
    so the server can answer it without knowing the engine.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(errno.ENOSPC, f"storage is full: {detail}")


@attrs.frozen
class NewTask:
    """A task as a create request describes it, before it is stored."""

    id: str
    owner: str
    model_name: str
    clip_length: float
    scopes: tuple[str, ...]
    options: tuple[str, ...]
    start: float = 0.0
    end: float | None = None
    input_url: str | None = None
    input_filename: str | None = None
    duration: float | None = None
    media_sha256: str | None = None
    media_size: int | None = None
    #: Embed API v2 tasks: the checked request as JSON (``None``: a v1 task).
    spec: str | None = None


@attrs.frozen
class TaskRecord:
    """A stored task; times are UTC epoch seconds."""

    id: str
    owner: str
    model_name: str
    status: str
    created_at: float
    updated_at: float
    clip_length: float
    scopes: tuple[str, ...]
    options: tuple[str, ...]
    start: float = 0.0
    end: float | None = None
    input_url: str | None = None
    input_filename: str | None = None
    duration: float | None = None
    clips_done: int | None = None
    clips_total: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    media_sha256: str | None = None
    media_size: int | None = None
    #: v2 only: the checked request, and what the result adds (usage) as JSON.
    spec: str | None = None
    result_meta: str | None = None

    @property
    def api(self) -> str:
        return "v1" if self.spec is None else "v2"


@attrs.frozen
class SegmentRecord:
    """One stored vector; ``vector`` (and v2's ``uncertainty``) little-endian float32 bytes."""

    start: float
    end: float
    scope: str
    option: str
    vector: bytes = attrs.field(repr=lambda v: f"<{len(v) // 4} float32>")
    uncertainty: bytes | None = attrs.field(default=None, repr=False)


class Store(Protocol):
    """What the server needs from durable storage. Every method is safe to call concurrently."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_task(self, task: NewTask, *, idempotency_key: str | None = None) -> str:
        """Store ``task`` durably; returns its id, or with an ``idempotency_key``
        already used by the same owner, the original task's id (storing nothing)."""
        ...

    async def find_idempotent(self, owner: str, key: str, *, max_age: float) -> str | None: ...

    async def get_task(self, task_id: str, *, owner: str | None = None) -> TaskRecord | None: ...

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
        """Newest first, tasks of one API version (``v1``/``v2``) only; returns the page
        and the total number matching."""
        ...

    async def get_segments(
        self, task_id: str, *, options: Sequence[str] | None = None
    ) -> list[SegmentRecord]: ...

    async def start_attempt(self, task_id: str) -> int:
        """Count one more attempt at a ``processing`` task; returns the new count."""
        ...

    async def set_progress(self, task_id: str, done: int, total: int) -> None: ...

    async def set_duration(self, task_id: str, duration: float) -> None: ...

    async def finish_ready(
        self,
        task_id: str,
        segments: Sequence[SegmentRecord],
        *,
        duration: float | None,
        result_meta: str | None = None,
    ) -> None: ...

    async def finish_failed(self, task_id: str, code: str, message: str) -> None: ...

    async def processing_ids(self) -> list[str]:
        """Ids of tasks still ``processing``, oldest first (to resume after a restart)."""
        ...

    async def status_counts(self, *, owner: str | None = None) -> dict[str, int]:
        """Tasks by status: one owner's, or every task when ``owner`` is None."""
        ...

    async def prune_idempotency(self, older_than: float) -> int: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    model_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    clip_length REAL NOT NULL,
    scopes TEXT NOT NULL,
    options TEXT NOT NULL,
    start_sec REAL NOT NULL DEFAULT 0,
    end_sec REAL,
    input_url TEXT,
    input_filename TEXT,
    duration REAL,
    clips_done INTEGER,
    clips_total INTEGER,
    error_code TEXT,
    error_message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    media_sha256 TEXT,
    media_size INTEGER,
    spec TEXT,
    result_meta TEXT
);
CREATE INDEX IF NOT EXISTS tasks_owner_created ON tasks (owner, created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, seq);
CREATE TABLE IF NOT EXISTS segments (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start_sec REAL NOT NULL,
    end_sec REAL NOT NULL,
    scope TEXT NOT NULL,
    option TEXT NOT NULL,
    vector BLOB NOT NULL,
    uncertainty BLOB,
    PRIMARY KEY (task_id, idx)
);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
"""
_SCHEMA_VERSION = 2
#: Version -> the statements that bring the previous version's database to it.
_MIGRATIONS = {
    2: (
        "ALTER TABLE tasks ADD COLUMN spec TEXT",
        "ALTER TABLE tasks ADD COLUMN result_meta TEXT",
        "ALTER TABLE segments ADD COLUMN uncertainty BLOB",
    ),
}

#: The task columns both stores select, in the order :func:`task_record` reads them.
TASK_COLUMNS = (
    "id, owner, model_name, status, created_at, updated_at, clip_length, scopes, options, "
    "start_sec, end_sec, input_url, input_filename, duration, clips_done, clips_total, "
    "error_code, error_message, attempts, media_sha256, media_size, spec, result_meta"
)


def _split(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def task_record(
    row: Sequence[Any], names: Callable[[Any], tuple[str, ...]] = _split
) -> TaskRecord:
    """A :data:`TASK_COLUMNS` row as a record, for either store. ``names`` reads the
    scopes and options columns: comma-joined text in SQLite, arrays in PostgreSQL."""
    return TaskRecord(
        id=row[0],
        owner=row[1],
        model_name=row[2],
        status=row[3],
        created_at=row[4],
        updated_at=row[5],
        clip_length=row[6],
        scopes=names(row[7]),
        options=names(row[8]),
        start=row[9],
        end=row[10],
        input_url=row[11],
        input_filename=row[12],
        duration=row[13],
        clips_done=row[14],
        clips_total=row[15],
        error_code=row[16],
        error_message=row[17],
        attempts=row[18],
        media_sha256=row[19],
        media_size=row[20],
        spec=row[21],
        result_meta=row[22],
    )


def _unusable(path: Path, exc: sqlite3.DatabaseError) -> str:
    if isinstance(exc, sqlite3.OperationalError):
        return f"the task database {path} could not be opened ({exc}); check its permissions"
    return (
        f"the task database {path} is damaged or not an aioembed database ({exc}); "
        f"move it and any {path.name}-wal/-shm files aside (or restore a backup) "
        "and start again"
    )


class SqliteStore:
    """:class:`Store` on one SQLite file (see the module docstring for the threading model)."""

    def __init__(self, path: Path | str, *, readers: int = 2) -> None:
        self.path = Path(path)
        self._readers_n = readers
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None

    # -- plumbing ---------------------------------------------------------------

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if write:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        else:
            conn.execute("PRAGMA query_only = ON")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _conn(self, *, write: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(write=write)
            self._local.conn = conn
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise RuntimeError("store is not open")

        def run() -> T:
            conn = self._conn(write=True)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    if conn.in_transaction:  # SQLite rolls back by itself on some errors
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL:
                    raise StorageFullError(str(e)) from e
                raise
            return result

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise RuntimeError("store is not open")

        def run() -> T:
            conn = self._conn(write=False)
            # One transaction so multi-statement reads see one snapshot.
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def open(self) -> None:
        """Create or migrate the schema. The file and its ``-wal``/``-shm`` are ``0600``.

        Raises ``RuntimeError`` naming the file and what to do when it is not a usable
        database (damaged, not SQLite, unreadable), ``OSError`` when it cannot be created.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.get_running_loop().run_in_executor(None, private_file, self.path)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="aioembed-store-w")
        self._readers = ThreadPoolExecutor(self._readers_n, thread_name_prefix="aioembed-store-r")

        def init() -> None:
            conn = self._conn(write=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer aioembed (schema {version})"
                )
            if version:
                for step in range(version + 1, _SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            # Prove the file is writable now rather than on the first create.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")

        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, init)
        except sqlite3.DatabaseError as e:
            await self.close()
            raise RuntimeError(_unusable(self.path, e)) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for pool in (self._writer, self._readers):
            if pool is not None:
                await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
        self._writer = self._readers = None
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # -- writes -----------------------------------------------------------------

    async def create_task(self, task: NewTask, *, idempotency_key: str | None = None) -> str:
        def run(conn: sqlite3.Connection) -> str:
            now = time.time()
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT task_id FROM idempotency WHERE owner = ? AND key = ?",
                    (task.owner, idempotency_key),
                ).fetchone()
                if row is not None:
                    return str(row[0])
            conn.execute(
                "INSERT INTO tasks (id, owner, model_name, status, created_at, updated_at, "
                "clip_length, scopes, options, start_sec, end_sec, input_url, input_filename, "
                "duration, media_sha256, media_size, spec) "
                "VALUES (?, ?, ?, 'processing', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.id,
                    task.owner,
                    task.model_name,
                    now,
                    now,
                    task.clip_length,
                    ",".join(task.scopes),
                    ",".join(task.options),
                    task.start,
                    task.end,
                    task.input_url,
                    task.input_filename,
                    task.duration,
                    task.media_sha256,
                    task.media_size,
                    task.spec,
                ),
            )
            if idempotency_key is not None:
                conn.execute(
                    "INSERT INTO idempotency (owner, key, task_id, created_at) VALUES (?, ?, ?, ?)",
                    (task.owner, idempotency_key, task.id, now),
                )
            return task.id

        return await self._write(run)

    async def start_attempt(self, task_id: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "UPDATE tasks SET attempts = attempts + 1, clips_done = NULL, clips_total = NULL "
                "WHERE id = ? AND status = 'processing' RETURNING attempts",
                (task_id,),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._write(run)

    async def set_progress(self, task_id: str, done: int, total: int) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE tasks SET clips_done = ?, clips_total = ? "
                "WHERE id = ? AND status = 'processing'",
                (done, total, task_id),
            )
        )

    async def set_duration(self, task_id: str, duration: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE tasks SET duration = ?, updated_at = ? WHERE id = ?",
                (duration, time.time(), task_id),
            )
        )

    async def finish_ready(
        self,
        task_id: str,
        segments: Sequence[SegmentRecord],
        *,
        duration: float | None,
        result_meta: str | None = None,
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # A rerun after a crash may find rows from nowhere: results commit
            # with the status, so there are none, but stay idempotent anyway.
            conn.execute("DELETE FROM segments WHERE task_id = ?", (task_id,))
            conn.executemany(
                "INSERT INTO segments (task_id, idx, start_sec, end_sec, scope, option, vector, "
                "uncertainty) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (task_id, i, s.start, s.end, s.scope, s.option, s.vector, s.uncertainty)
                    for i, s in enumerate(segments)
                ),
            )
            conn.execute(
                "UPDATE tasks SET status = 'ready', updated_at = ?, "
                "duration = COALESCE(?, duration), clips_done = NULL, clips_total = NULL, "
                "error_code = NULL, error_message = NULL, result_meta = ? WHERE id = ?",
                (time.time(), duration, result_meta, task_id),
            )

        await self._write(run)

    async def finish_failed(self, task_id: str, code: str, message: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "UPDATE tasks SET status = 'failed', updated_at = ?, error_code = ?, "
                "error_message = ?, clips_done = NULL, clips_total = NULL "
                "WHERE id = ? AND status = 'processing'",
                (time.time(), code, message, task_id),
            )
        )

    async def prune_idempotency(self, older_than: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM idempotency WHERE created_at < ?", (older_than,)
            ).rowcount

        return await self._write(run)

    # -- reads ------------------------------------------------------------------

    async def find_idempotent(self, owner: str, key: str, *, max_age: float) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT task_id FROM idempotency WHERE owner = ? AND key = ? AND created_at >= ?",
                (owner, key, time.time() - max_age),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(run)

    async def get_task(self, task_id: str, *, owner: str | None = None) -> TaskRecord | None:
        def run(conn: sqlite3.Connection) -> TaskRecord | None:
            row = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
            if row is None or (owner is not None and row[1] != owner):
                return None
            return task_record(row)

        return await self._read(run)

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
        where = ["owner = ?", "spec IS NULL" if api == "v1" else "spec IS NOT NULL"]
        args: list[Any] = [owner]
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if created_from is not None:
            where.append("created_at >= ?")
            args.append(created_from)
        if created_to is not None:
            where.append("created_at <= ?")
            args.append(created_to)
        clause = " AND ".join(where)

        def run(conn: sqlite3.Connection) -> tuple[list[TaskRecord], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM tasks WHERE {clause}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE {clause} "
                "ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return [task_record(r) for r in rows], int(total)

        return await self._read(run)

    async def get_segments(
        self, task_id: str, *, options: Sequence[str] | None = None
    ) -> list[SegmentRecord]:
        sql = (
            "SELECT start_sec, end_sec, scope, option, vector, uncertainty FROM segments "
            "WHERE task_id = ?"
        )
        args: list[Any] = [task_id]
        if options is not None:
            sql += f" AND option IN ({', '.join('?' * len(options))})"
            args.extend(options)
        sql += " ORDER BY idx"

        def run(conn: sqlite3.Connection) -> list[SegmentRecord]:
            return [SegmentRecord(*row) for row in conn.execute(sql, args)]

        return await self._read(run)

    async def processing_ids(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM tasks WHERE status = 'processing' ORDER BY seq"
            ).fetchall()
            return [str(r[0]) for r in rows]

        return await self._read(run)

    async def status_counts(self, *, owner: str | None = None) -> dict[str, int]:
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())

        def run(conn: sqlite3.Connection) -> dict[str, int]:
            counts = dict.fromkeys(STATUSES, 0)
            sql = f"SELECT status, COUNT(*) FROM tasks {where} GROUP BY status"
            for status, n in conn.execute(sql, args):
                counts[str(status)] = int(n)
            return counts

        return await self._read(run)
