"""A small SQLite database the server owns beside its task store (assets, uploads)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from ._private import private_file

__all__ = ["SqliteFile"]

_T = TypeVar("_T")


class SqliteFile:
    """One connection behind a lock, each call one transaction on the default
    executor: these stores see a few writes per upload, so a pool buys nothing.

    Subclasses set :attr:`SCHEMA` (idempotent DDL run at :meth:`open`).
    """

    SCHEMA: ClassVar[str] = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        def call() -> _T:
            with self._lock:
                assert self._db is not None, f"{type(self).__name__} is not open"
                with self._db:
                    return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            private_file(self.path)  # 0600, and its -wal/-shm follow (see _private)
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.SCHEMA)
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(None, connect)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(None, db.close)
