"""Where a task's input lives until it is embedded: the :class:`MediaStore` seam.

A task's media is keyed by its id and kept only while the task is
``processing``: adopted at create (an upload) or when a worker fetched its URL,
read by the worker, dropped when the task ends. :meth:`~MediaStore.sweep`
removes what a crash left behind (between adopt and the store's commit, or
between a task's end and the drop).

Workers decode with FFmpeg, which wants a local file: :meth:`~MediaStore.local`
yields a local path to read (the file itself for :class:`LocalMediaStore`; an
object-store implementation downloads to a scratch file and removes it after).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

__all__ = ["LocalMediaStore", "MediaStore", "checked_task_id"]

_TASK_ID = re.compile(r"[0-9a-f]{24}")


class MediaStore(Protocol):
    """Task inputs by task id. Every method is safe to call concurrently."""

    async def adopt(self, task_id: str, source: Path) -> None:
        """Move the finished local file ``source`` in as ``task_id``'s media, durably
        (it survives a crash once this returns); ``source`` is gone afterwards."""
        ...

    def local(self, task_id: str) -> AbstractAsyncContextManager[Path | None]:
        """A local path holding ``task_id``'s media for the block, ``None`` if it has none."""
        ...

    async def drop(self, task_id: str) -> None:
        """Remove ``task_id``'s media; nothing happens if it has none."""
        ...

    async def sweep(self, keep: Collection[str]) -> int:
        """Remove every task's media except ``keep``'s; returns how many were removed."""
        ...


def checked_task_id(task_id: str) -> str:
    """``task_id`` if it is one of ours; ``ValueError`` otherwise (ids name files and keys)."""
    # Ids are the server's own, but a path is built from them: never let one climb out.
    if not _TASK_ID.fullmatch(task_id):
        raise ValueError(f"not a task id: {task_id[:40]!r}")
    return task_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalMediaStore:
    """:class:`MediaStore` in one directory, a file per task named by its id.

    ``root`` must exist and be on the same file system as the files adopted
    (a rename, not a copy). Blocking calls run in the default executor.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, task_id: str) -> Path:
        return self.root / checked_task_id(task_id)

    async def adopt(self, task_id: str, source: Path) -> None:
        dest = self._path(task_id)

        def move() -> None:
            os.replace(source, dest)
            _fsync_dir(self.root)

        await asyncio.get_running_loop().run_in_executor(None, move)

    @contextlib.asynccontextmanager
    async def local(self, task_id: str) -> AsyncIterator[Path | None]:
        path = self._path(task_id)
        exists = await asyncio.get_running_loop().run_in_executor(None, path.exists)
        yield path if exists else None

    async def drop(self, task_id: str) -> None:
        path = self._path(task_id)
        await asyncio.get_running_loop().run_in_executor(None, _unlink, path)

    async def sweep(self, keep: Collection[str]) -> int:
        wanted = set(keep)

        def run() -> int:
            removed = 0
            for path in self.root.iterdir():
                if path.name not in wanted:
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
            return removed

        return await asyncio.get_running_loop().run_in_executor(None, run)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
