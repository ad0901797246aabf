"""The :class:`~._parts.PartStore` seam on an S3-compatible store, shared by replicas.

A multipart upload session's parts are objects ``<prefix>/parts/<upload_id>/<index>``,
so a client whose replica died sends the remaining parts through another (the
session itself is in PostgreSQL, :mod:`._pg_assets`). A part is received into a
scratch file (hashed, size-capped; memory stays flat), then uploaded from it;
``join`` streams the parts in order into one local file for the probe.

Parts are separate objects, not the parts of one S3 multipart upload: an S3
multipart upload's id would have to be shared by every replica before its first
part, and parts replaced under a retried URL. Joining costs one download of the
whole file by the replica that completes the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Collection
from pathlib import Path

from ._parts import PartTooLargeError, PartWrite
from ._s3_media import S3MediaStore

__all__ = ["S3PartStore"]

_ID = re.compile(r"[0-9a-f]{24}")


def _checked(upload_id: str) -> str:
    if not _ID.fullmatch(upload_id):
        raise ValueError(f"not an upload id: {upload_id[:40]!r}")
    return upload_id


class S3PartStore:
    """:class:`~._parts.PartStore` in the bucket of ``objects`` (an open
    :class:`~._s3_media.S3MediaStore`, whose client and scratch directory it uses)."""

    def __init__(self, objects: S3MediaStore, *, sweep_grace: float = 3600.0) -> None:
        self._o = objects
        self._grace = sweep_grace

    def _prefix(self, upload_id: str) -> str:
        return self._o.location.key("parts", _checked(upload_id)) + "/"

    async def write(
        self, upload_id: str, index: int, body: AsyncIterator[bytes], *, limit: int
    ) -> PartWrite:
        key = self._prefix(upload_id) + str(int(index))
        loop = asyncio.get_running_loop()
        spool = self._o.scratch / f"part-{secrets.token_hex(8)}"
        md5, size = hashlib.md5(usedforsecurity=False), 0
        try:
            with open(spool, "wb") as f:  # noqa: ASYNC230 - writes run in the executor
                async for data in body:
                    size += len(data)
                    if size > limit:
                        raise PartTooLargeError
                    md5.update(data)
                    await loop.run_in_executor(None, f.write, data)
            # A retried part replaces the object only once it arrived whole.
            await self._o.put_file(key, spool)
        finally:
            await loop.run_in_executor(None, _unlink, spool)
        return PartWrite(size, md5.hexdigest())

    async def join(self, upload_id: str, count: int, dest: Path) -> None:
        prefix = self._prefix(upload_id)
        for index in range(1, count + 1):
            if not await self._o.download(f"{prefix}{index}", dest, append=True):
                raise FileNotFoundError(f"part {index} of upload {upload_id} is missing")
        fd = await asyncio.get_running_loop().run_in_executor(None, os.open, dest, os.O_RDONLY)
        try:
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
        finally:
            os.close(fd)

    async def drop(self, upload_id: str) -> None:
        found = await self._o.listing(self._prefix(upload_id))
        await self._o.delete_keys([o["Key"] for o in found])

    async def sweep(self, keep: Collection[str]) -> int:
        root = self._o.location.key("parts") + "/"
        wanted = set(keep)
        cutoff = time.time() - self._grace
        doomed: dict[str, list[str]] = {}
        for o in await self._o.listing(root):
            upload_id = o["Key"][len(root) :].split("/", 1)[0]
            if upload_id not in wanted and o["LastModified"].timestamp() < cutoff:
                doomed.setdefault(upload_id, []).append(o["Key"])
        await self._o.delete_keys([k for keys in doomed.values() for k in keys])
        return len(doomed)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
