"""Where uploaded parts wait for their session to complete: the :class:`PartStore` seam.

A sibling of :class:`~._media.MediaStore` shaped like S3 multipart uploads
(a part per index, then one ``join``), so an object store can keep them as
real multipart parts. :class:`LocalPartStore` keeps ``root/<upload_id>/<index>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Protocol

__all__ = ["LocalPartStore", "PartStore", "PartTooLargeError", "PartWrite"]

_ID = re.compile(r"[0-9a-f]{24}")


class PartTooLargeError(Exception):
    """The part's body ran past the size it must have."""


class PartWrite:
    """The size and MD5 hex of a part as received."""

    def __init__(self, size: int, md5: str) -> None:
        self.size = size
        self.md5 = md5


class PartStore(Protocol):
    async def write(
        self, upload_id: str, index: int, body: AsyncIterator[bytes], *, limit: int
    ) -> PartWrite:
        """Receive a part (replacing an earlier one only once it arrived whole)."""
        ...

    async def join(self, upload_id: str, count: int, dest: Path) -> None:
        """Concatenate parts 1..count into ``dest`` without holding them in memory."""
        ...

    async def drop(self, upload_id: str) -> None: ...

    async def sweep(self, keep: Collection[str]) -> int: ...


def _checked(upload_id: str) -> str:
    if not _ID.fullmatch(upload_id):
        raise ValueError(f"not an upload id: {upload_id[:40]!r}")
    return upload_id


class _Sink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 - closed in finish/abort
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.md5.update(data)
        self.file.write(data)
        self.size += len(data)

    def close(self) -> None:
        self.file.close()


class LocalPartStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, upload_id: str) -> Path:
        return self.root / _checked(upload_id)

    async def write(
        self, upload_id: str, index: int, body: AsyncIterator[bytes], *, limit: int
    ) -> PartWrite:
        loop = asyncio.get_running_loop()
        folder = self._dir(upload_id)
        await loop.run_in_executor(None, lambda: folder.mkdir(mode=0o700, exist_ok=True))
        tmp = folder / f"{index}.{os.urandom(4).hex()}.tmp"
        sink = await loop.run_in_executor(None, _Sink, tmp)
        try:
            async for data in body:
                if sink.size + len(data) > limit:
                    raise PartTooLargeError
                await loop.run_in_executor(None, sink.write, data)
            await loop.run_in_executor(None, sink.close)
            await loop.run_in_executor(None, os.replace, tmp, folder / str(index))
        except BaseException:
            await asyncio.shield(loop.run_in_executor(None, _discard, sink))
            raise
        return PartWrite(sink.size, sink.md5.hexdigest())

    async def join(self, upload_id: str, count: int, dest: Path) -> None:
        folder = self._dir(upload_id)

        def run() -> None:
            with open(dest, "wb") as out:
                for index in range(1, count + 1):
                    with open(folder / str(index), "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())

        await asyncio.get_running_loop().run_in_executor(None, run)

    async def drop(self, upload_id: str) -> None:
        folder = self._dir(upload_id)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: shutil.rmtree(folder, ignore_errors=True)
        )

    async def sweep(self, keep: Collection[str]) -> int:
        wanted = set(keep)

        def run() -> int:
            removed = 0
            for path in self.root.iterdir():
                if path.name not in wanted:
                    shutil.rmtree(path, ignore_errors=True)
                    removed += 1
                else:
                    for tmp in path.glob("*.tmp"):
                        with contextlib.suppress(OSError):
                            tmp.unlink()
            return removed

        return await asyncio.get_running_loop().run_in_executor(None, run)


def _discard(sink: _Sink) -> None:
    sink.close()
    with contextlib.suppress(FileNotFoundError):
        sink.path.unlink()
