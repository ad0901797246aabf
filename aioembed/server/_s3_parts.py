"""The :class:`~._parts.PartStore` seam on an S3-compatible store: one S3 multipart upload
per session, shared by replicas.

A session's part ``i`` is part ``i`` of the S3 multipart upload of the object
``<prefix>/parts/<upload_id>``, so a part URL maps 1:1 onto an S3 part, a client
whose replica died sends the remaining parts through another (the session is in
PostgreSQL, :mod:`._pg_assets`), and a re-sent part replaces the earlier one (S3
keeps the last part uploaded under a number). The S3 upload id is made by
whichever replica receives the session's first part and recorded in the
database (a :class:`UploadIds` registry): a replica that lost the race aborts
its own and uses the recorded one. A part is received into a scratch file
(hashed, size-capped; memory holds one S3 request at a time), then sent.
``join`` completes the S3 upload and streams the object into a local file for
the probe. S3 parts are 5 MiB at least but the last, as the contract's chunks are.
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
from typing import Protocol

from ._parts import PartTooLargeError, PartWrite
from ._s3_media import S3MediaStore

__all__ = ["S3PartStore", "UploadIds"]

_ID = re.compile(r"[0-9a-f]{24}")


class UploadIds(Protocol):
    """Where every replica finds a session's S3 multipart upload id."""

    async def s3_upload(self, upload_id: str, proposed: str) -> str:
        """The recorded S3 upload id of ``upload_id``: ``proposed`` if none was yet."""
        ...

    async def s3_upload_of(self, upload_id: str) -> str | None: ...

    async def forget_s3_upload(self, upload_id: str) -> None: ...


def _checked(upload_id: str) -> str:
    if not _ID.fullmatch(upload_id):
        raise ValueError(f"not an upload id: {upload_id[:40]!r}")
    return upload_id


class S3PartStore:
    """:class:`~._parts.PartStore` in the bucket of ``objects`` (an open
    :class:`~._s3_media.S3MediaStore`, whose client and scratch directory it uses)."""

    def __init__(
        self, objects: S3MediaStore, ids: UploadIds, *, sweep_grace: float = 24 * 3600.0
    ) -> None:
        self._o = objects
        self._ids = ids
        self._grace = sweep_grace

    @property
    def _bucket(self) -> str:
        return self._o.location.bucket

    def _key(self, upload_id: str) -> str:
        return self._o.location.key("parts", _checked(upload_id))

    async def _upload(self, upload_id: str) -> str:
        found = await self._ids.s3_upload_of(upload_id)
        if found is not None:
            return found
        key = self._key(upload_id)
        mine = (await self._o.client.create_multipart_upload(Bucket=self._bucket, Key=key))[
            "UploadId"
        ]
        recorded = await self._ids.s3_upload(upload_id, mine)
        if recorded != mine:  # another replica was first
            await self._o.client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=mine)
        return recorded

    async def write(
        self, upload_id: str, index: int, body: AsyncIterator[bytes], *, limit: int
    ) -> PartWrite:
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
            payload = await loop.run_in_executor(None, spool.read_bytes)  # one part: <= limit
            await self._o.client.upload_part(
                Bucket=self._bucket,
                Key=self._key(upload_id),
                UploadId=await self._upload(upload_id),
                PartNumber=int(index),
                Body=payload,
            )
        finally:
            await loop.run_in_executor(None, _unlink, spool)
        return PartWrite(size, md5.hexdigest())

    async def join(self, upload_id: str, count: int, dest: Path) -> None:
        key = self._key(upload_id)
        s3_id = await self._ids.s3_upload_of(upload_id)
        if s3_id is not None:  # None: completed already (a retried join)
            etags: dict[int, str] = {}
            paginator = self._o.client.get_paginator("list_parts")
            async for page in paginator.paginate(Bucket=self._bucket, Key=key, UploadId=s3_id):
                etags.update({p["PartNumber"]: p["ETag"] for p in page.get("Parts", ())})
            missing = [i for i in range(1, count + 1) if i not in etags]
            if missing:
                raise FileNotFoundError(f"upload {upload_id}: parts {missing[:5]} are missing")
            parts = [{"PartNumber": i, "ETag": etags[i]} for i in range(1, count + 1)]
            await self._o.client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=s3_id, MultipartUpload={"Parts": parts}
            )
            await self._ids.forget_s3_upload(upload_id)
        if not await self._o.download(key, dest):
            raise FileNotFoundError(f"upload {upload_id} has no parts left")

    async def drop(self, upload_id: str) -> None:
        key = self._key(upload_id)
        s3_id = await self._ids.s3_upload_of(upload_id)
        if s3_id is not None:
            with contextlib.suppress(Exception):  # gone already: nothing to abort
                await self._o.client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=s3_id
                )
            await self._ids.forget_s3_upload(upload_id)
        await self._o.client.delete_object(Bucket=self._bucket, Key=key)

    async def sweep(self, keep: Collection[str]) -> int:
        """Abort S3 uploads and delete joined objects of sessions not in ``keep``, once
        older than the grace period (another replica may be creating one now)."""
        root = self._o.location.key("parts") + "/"
        wanted = {self._key(u) for u in keep}
        cutoff = time.time() - self._grace
        removed = 0
        paginator = self._o.client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self._bucket, Prefix=root):
            for up in page.get("Uploads", ()):
                if up["Key"] not in wanted and up["Initiated"].timestamp() < cutoff:
                    with contextlib.suppress(Exception):
                        await self._o.client.abort_multipart_upload(
                            Bucket=self._bucket, Key=up["Key"], UploadId=up["UploadId"]
                        )
                    removed += 1
        stale = [
            o["Key"]
            for o in await self._o.listing(root)
            if o["Key"] not in wanted and o["LastModified"].timestamp() < cutoff
        ]
        await self._o.delete_keys(stale)
        return removed + len(stale)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
