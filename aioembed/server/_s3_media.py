"""The :class:`~._media.MediaStore` seam on an S3-compatible object store (operator mode).

A task's media is the object ``<prefix>/media/<task_id>`` in one bucket, so every
replica and worker on any host sees the same inputs. Bytes never sit whole in
memory: :meth:`S3MediaStore.adopt` sends the local file in ``part_size`` parts
(an S3 multipart upload; one ``PUT`` when the file fits in a part), read from
disk one part at a time, and :meth:`~S3MediaStore.local` streams the object
down to a scratch file for FFmpeg, which wants a seekable local file (a ranged
reader would re-request the moov atom and every seek; one sequential download
is cheaper), and removes it after the block.

Endpoint and credentials follow the AWS SDK's own rules (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, profiles); ``endpoint_url`` overrides the
endpoint (MinIO, moto). Needs the ``aioembed[scale]`` extra (aiobotocore).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import attrs
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from ._media import checked_task_id

__all__ = ["S3Location", "S3MediaStore"]

#: S3's smallest part but the last; bigger parts mean fewer requests per video.
MIN_PART = 5 * 1024 * 1024
DEFAULT_PART = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


@attrs.frozen
class S3Location:
    """``s3://bucket/prefix`` parsed: a bucket and a key prefix without slashes at its ends."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Raises ``ValueError`` for anything but ``s3://bucket[/prefix]``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"media location should look like s3://bucket/prefix, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("credentials do not belong in the s3:// URL; use AWS_* variables")
        if not 3 <= len(parts.netloc) <= 63:
            raise ValueError("an S3 bucket name has 3 to 63 characters")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, *names: str) -> str:
        return "/".join(p for p in (self.prefix, *names) if p)


class S3MediaStore:
    """:class:`~._media.MediaStore` in an S3 bucket; downloads go to ``scratch``.

    Use as ``async with S3MediaStore(location, scratch=...) as media: ...`` (the
    client's connection pool lives for the block). ``part_size`` (bytes, at
    least 5 MiB) bounds the memory one transfer holds. :meth:`sweep` spares
    objects younger than ``sweep_grace`` seconds: with many replicas, another
    one may have adopted media whose task it has not committed yet. Keys are
    ``<prefix>/<namespace>/<id>``: ``media`` for tasks, ``assets`` for assets.
    """

    def __init__(
        self,
        location: S3Location,
        *,
        scratch: Path,
        endpoint_url: str | None = None,
        part_size: int = DEFAULT_PART,
        sweep_grace: float = 3600.0,
        namespace: str = "media",
    ) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes")
        self.location = location
        self.scratch = scratch
        self._endpoint = endpoint_url
        self._part = part_size
        self._grace = sweep_grace
        self._namespace = namespace
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> S3MediaStore:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3", endpoint_url=self._endpoint, region_name=region or "us-east-1", config=config
            )
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client = None
        await self._stack.aclose()

    @property
    def _s3(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3MediaStore is not open")
        return self._client

    @property
    def client(self) -> Any:
        """The open aiobotocore S3 client (for the part store sharing it)."""
        return self._s3

    def _key(self, task_id: str) -> str:
        return self.location.key(self._namespace, checked_task_id(task_id))

    async def adopt(self, task_id: str, source: Path) -> None:
        key = self._key(task_id)
        await self.put_file(key, source)
        await asyncio.get_running_loop().run_in_executor(None, _unlink, source)

    async def put_file(self, key: str, source: Path) -> None:
        """Upload ``source`` as ``key``, a part at a time (never the whole file in memory)."""
        loop = asyncio.get_running_loop()
        bucket = self.location.bucket
        with open(source, "rb") as f:  # noqa: ASYNC230 - reads below run in the executor
            first = await loop.run_in_executor(None, f.read, self._part)
            if len(first) < self._part:
                await self._s3.put_object(Bucket=bucket, Key=key, Body=first)
                return
            started = await self._s3.create_multipart_upload(Bucket=bucket, Key=key)
            upload_id = started["UploadId"]
            try:
                parts, chunk, number = [], first, 1
                while chunk:
                    sent = await self._s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                    )
                    parts.append({"ETag": sent["ETag"], "PartNumber": number})
                    chunk = await loop.run_in_executor(None, f.read, self._part)
                    number += 1
                await self._s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                    )
                raise

    @contextlib.asynccontextmanager
    async def local(self, task_id: str) -> AsyncIterator[Path | None]:
        key = self._key(task_id)
        dest = self.scratch / f"s3-{secrets.token_hex(8)}-{task_id}"
        try:
            found = await self.download(key, dest)
            yield dest if found else None
        finally:
            await asyncio.get_running_loop().run_in_executor(None, _unlink, dest)

    async def download(self, key: str, dest: Path, *, append: bool = False) -> bool:
        """Stream ``key`` into ``dest`` (created 0600, or appended to); False if missing."""
        loop = asyncio.get_running_loop()
        try:
            answer = await self._s3.get_object(Bucket=self.location.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_EXCL)
        fd = await loop.run_in_executor(None, os.open, dest, flags, 0o600)
        with open(fd, "wb") as f:  # noqa: ASYNC230 - writes below run in the executor
            async with answer["Body"] as body:
                while chunk := await body.read(_READ_CHUNK):
                    await loop.run_in_executor(None, f.write, chunk)
        return True

    async def drop(self, task_id: str) -> None:
        await self._s3.delete_object(Bucket=self.location.bucket, Key=self._key(task_id))

    async def sweep(self, keep: Collection[str]) -> int:
        wanted = {self._key(t) for t in keep}
        prefix = self.location.key(self._namespace) + "/"
        cutoff = time.time() - self._grace
        doomed = [
            o["Key"]
            for o in await self.listing(prefix)
            if o["Key"] not in wanted and o["LastModified"].timestamp() < cutoff
        ]
        await self.delete_keys(doomed)
        return len(doomed)

    async def listing(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under ``prefix`` (S3's listing entries: ``Key``, ``LastModified``...)."""
        found: list[dict[str, Any]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            found += page.get("Contents", ())
        return found

    async def delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            await self._s3.delete_objects(
                Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}
            )


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
