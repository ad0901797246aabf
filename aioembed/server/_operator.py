"""Operator mode's backends: PostgreSQL (store, queue, rate limits) and an object store.

``aioembed serve --database postgresql://… --media s3://bucket/prefix`` replicas
and ``aioembed worker`` processes on any hosts share these, and nothing else: a
replica keeps no task state on its disk (uploads are spooled to a private
scratch directory, removed at exit), so any number of them can stand behind a
load balancer and any one can die. Store, queue and buckets use one schema, so
a worker's result and its lease release commit together (:mod:`._fenced`).

Imported only in operator mode: the default server needs none of the
``aioembed[scale]`` dependencies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from .._extras import extra_missing
from ._config import ServerConfig
from ._private import private_dir
from ._ratelimit import DURATION
from ._redact import redact_url

try:
    from ._pg_assets import PostgresAssetStore, PostgresUploadStore
    from ._pg_queue import PostgresQueue
    from ._pg_ratelimit import PostgresRateLimiter
    from ._pg_store import PostgresStore
    from ._s3_media import S3Location, S3MediaStore
    from ._s3_parts import S3PartStore
except ImportError as e:  # asyncpg or aiobotocore missing: name the extra to install
    raise extra_missing("operator mode", "scale", e) from None

__all__ = ["OperatorAssets", "OperatorBackends", "scratch_dir", "shown_database"]

#: One schema for store, queue and rate buckets (the fenced completion needs one database).
SCHEMA = "aioembed"


def shown_database(config: ServerConfig) -> str:
    """The database URL as it may be shown: any password redacted."""
    return redact_url(config.database or "")


@attrs.define
class OperatorBackends:
    """The shared backends of one process, built from ``config`` (opened by the caller)."""

    store: PostgresStore
    queue: PostgresQueue
    limiter: PostgresRateLimiter | None
    #: The per-key media ``duration`` bucket, shared like ``limiter``.
    media_budget: PostgresRateLimiter | None = None

    @classmethod
    def build(cls, config: ServerConfig) -> OperatorBackends:
        dsn = config.database
        if dsn is None:
            raise ValueError("operator mode needs a database URL")
        limiter = (
            PostgresRateLimiter(config.rate_limit, dsn, schema=SCHEMA)
            if config.rate_limit is not None
            else None
        )
        media = config.media_rate_limit
        return cls(
            PostgresStore(dsn, schema=SCHEMA, pool_size=8),
            PostgresQueue(dsn, schema=SCHEMA),
            limiter,
            None
            if media is None
            else PostgresRateLimiter(media, dsn, schema=SCHEMA, dimension=DURATION),
        )

    async def open_queue_and_limiter(self, stack: contextlib.AsyncExitStack) -> None:
        """Open the queue and the shared limiter, closed by ``stack`` (the store is
        opened with the server's own, whatever its kind)."""
        await self.queue.open()
        stack.push_async_callback(self.queue.close)
        for each in (self.limiter, self.media_budget):
            if each is not None:
                await stack.enter_async_context(each)

    @staticmethod
    def media(config: ServerConfig, scratch: Path, *, namespace: str = "media") -> S3MediaStore:
        """The object store for task media, or for assets with ``namespace="assets"``
        (open it with ``async with``)."""
        return S3MediaStore(
            S3Location.parse(config.media or ""),
            scratch=scratch,
            endpoint_url=config.s3_endpoint,
            namespace=namespace,
        )


@attrs.frozen
class OperatorAssets:
    """Assets and multipart upload sessions shared by every replica: records in
    PostgreSQL, bytes (assets and parts) in the object store, one signing secret."""

    store: PostgresAssetStore
    media: S3MediaStore
    uploads: PostgresUploadStore
    parts: S3PartStore
    secret: bytes

    @classmethod
    async def open(
        cls, config: ServerConfig, scratch: Path, stack: contextlib.AsyncExitStack
    ) -> OperatorAssets:
        dsn = config.database or ""
        store = PostgresAssetStore(dsn, schema=SCHEMA)
        uploads = PostgresUploadStore(dsn, schema=SCHEMA)
        for opened in (store, uploads):
            await opened.open()
            stack.push_async_callback(opened.close)
        media = await stack.enter_async_context(
            OperatorBackends.media(config, scratch, namespace="assets")
        )
        secret = await uploads.shared_secret()
        return cls(store, media, uploads, S3PartStore(media, uploads), secret)


_SCRATCH = "aioembed-scratch-"


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private (0700) directory of this process for uploads and downloads in flight,
    named with its pid; those of processes that died without removing theirs
    (``kill -9``) are removed first."""
    _remove_dead_scratch(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH}{os.getpid()}-"))
    private_dir(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_dead_scratch(tmp: Path) -> None:
    for path in tmp.glob(f"{_SCRATCH}*-*"):
        pid = path.name.removeprefix(_SCRATCH).split("-", 1)[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid():
                continue
        except OSError:  # removed meanwhile by another process starting
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue
