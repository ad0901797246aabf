"""The asset domain (``/assets``): create (direct file or URL), view, page, delete.

An asset's bytes live in a :class:`~._media.MediaStore` of their own (keyed by
asset id, so an object store can hold them later); records in
:class:`~._asset_store.AssetStore`. A new asset answers ``processing`` at once;
fetching (URL) and probing run as background tasks, the probe in the worker
pool (off the event loop), and end ``ready`` or ``failed`` with a message.

An asset is a v2 media source (``asset_id``): :meth:`AssetService.acquire`
checks it (the caller's, ``ready``, of a kind the input takes) and holds it; a
task's worker reads its file through the same media store (no copy). Delete
refuses an asset in use with ``409 asset_in_use``: one held in this process (a
sync embed, or a task create until the task is stored) or referenced by a
``processing`` v2 task of its owner in the task store. The store is the truth
for tasks, so the answer survives a restart and holds across server processes
sharing one store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs

from .._params import invalid
from ..contract.assets import (
    DIRECT_MAX_BYTES,
    IMAGE_MAX_BYTES,
    MULTIPART_MAX_BYTES,
    URL_MAX_BYTES,
)
from ..contract.v2 import invalid as source_invalid
from ..errors import (
    APIStatusError,
    ErrorCode,
    NotFoundError,
    PayloadTooLargeError,
)
from ._asset_store import AssetRecord, AssetStore
from ._background import BackgroundJobs
from ._config import ServerConfig
from ._media import MediaStore
from ._service import JobRunner, UrlGate
from ._store import Store
from ._v2_engine import asset_of
from ._workers import JobError, PoolBusyError, ProbeJob, WorkerDied

__all__ = ["AssetLimits", "AssetService", "kind_of"]

log = logging.getLogger("aioembed.server.assets")

_MB = 1 << 20
KINDS = ("image", "video", "audio", "document")
#: Processing tasks read per query when looking for one that uses an asset.
_SCAN = 500


@attrs.frozen
class AssetLimits:
    """Asset size limits (bytes, inclusive): the contract's unless configured
    (:meth:`from_config`)."""

    direct: int = DIRECT_MAX_BYTES
    url: int = URL_MAX_BYTES
    image: int = IMAGE_MAX_BYTES
    multipart: int = MULTIPART_MAX_BYTES
    probe_timeout: float = 120.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> AssetLimits:
        return cls(direct=config.asset_direct_max_bytes, multipart=config.asset_multipart_max_bytes)


def kind_of(filename: str | None, content_type: str | None = None) -> str:
    """image | video | audio | document, from the name (else the part's type)."""
    guess = mimetypes.guess_type(filename or "")[0] or content_type or ""
    major = guess.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "document"


def _mime(filename: str | None, kind: str) -> str:
    guess = mimetypes.guess_type(filename or "")[0]
    if guess:
        return guess
    return {"video": "video/mp4", "audio": "audio/mpeg", "image": "image/jpeg"}.get(
        kind, "application/octet-stream"
    )


def _not_found(asset_id: str) -> NotFoundError:
    shown = asset_id if len(asset_id) <= 40 else asset_id[:37] + "..."
    return NotFoundError(f"The asset {shown!r} does not exist.", code=ErrorCode.RESOURCE_NOT_EXIST)


def new_id() -> str:
    return secrets.token_hex(12)


class AssetService:
    """Assets by owner. ``close()`` cancels the background fetches and probes."""

    def __init__(
        self,
        *,
        store: AssetStore,
        media: MediaStore,
        pool: JobRunner,
        urls: UrlGate,
        scratch: Path,
        limits: AssetLimits,
        tasks: Store | None = None,
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.media = media
        self.pool = pool
        self.urls = urls
        self.scratch = scratch
        self.limits = limits
        self._holds: Counter[str] = Counter()
        self._deleting: set[str] = set()
        self._jobs = BackgroundJobs()

    async def start(self) -> None:
        """Drop media no record owns; finish what a restart interrupted."""
        ids = await self.store.ids()
        await self.media.sweep(ids)
        for asset_id in ids:
            rec = await self.store.get(asset_id)
            if rec is not None and rec.status == "processing" and rec.method != "multipart":
                self._jobs.spawn(self._process(rec, url=None))

    async def close(self) -> None:
        await self._jobs.close()

    # -- create ---------------------------------------------------------------------

    def check_size(self, size: int, kind: str, method: str, param: str) -> None:
        limit = self.limits.image if kind == "image" else getattr(self.limits, method)
        if size > limit:
            raise PayloadTooLargeError(
                f"File size ({size / _MB:.1f} MB) exceeds maximum limit of {limit // _MB} MB.",
                code=ErrorCode.CONTENT_TOO_LARGE,
            )

    def _new(
        self, owner: str, method: str, filename: str | None, kind: str, meta: dict[str, Any] | None
    ) -> AssetRecord:
        now = time.time()
        return AssetRecord(
            id=new_id(),
            owner=owner,
            method=method,
            status="processing",
            filename=filename,
            file_type=_mime(filename, kind),
            kind=kind,
            created_at=now,
            updated_at=now,
            user_metadata=meta,
        )

    async def create_direct(
        self,
        owner: str,
        path: Path,
        *,
        size: int,
        filename: str | None,
        content_type: str | None,
        user_metadata: dict[str, Any] | None,
    ) -> AssetRecord:
        """Keep the received file (``path`` is moved away) and probe it in the background."""
        kind = kind_of(filename, content_type)
        self.check_size(size, kind, "direct", "file")
        rec = self._new(owner, "direct", filename, kind, user_metadata)
        rec.size = size
        await self.media.adopt(rec.id, path)
        await self.store.put(rec)
        self._jobs.spawn(self._process(rec, url=None))
        return rec

    async def create_url(
        self, owner: str, url: str, *, filename: str | None, user_metadata: dict[str, Any] | None
    ) -> AssetRecord:
        """Check the URL's destination now (SSRF rules as v1), fetch and probe later."""
        await self.urls.check(url, "url")
        name = filename or (url.rsplit("/", 1)[-1].split("?", 1)[0] or None)
        rec = self._new(owner, "url", name, kind_of(name), user_metadata)
        await self.store.put(rec)
        self._jobs.spawn(self._process(rec, url=url))
        return rec

    async def reserve(
        self, owner: str, filename: str, kind: str, user_metadata: dict[str, Any] | None
    ) -> AssetRecord:
        """A ``multipart`` asset, ``processing`` until its upload completes."""
        rec = self._new(owner, "multipart", filename, kind, user_metadata)
        await self.store.put(rec)
        return rec

    async def complete(self, asset_id: str, source: Path) -> None:
        """A finished upload's joined file becomes the asset's media; probe it."""
        rec = await self.store.get(asset_id)
        if rec is None:
            await asyncio.get_running_loop().run_in_executor(None, _unlink, source)
            return
        await self.media.adopt(asset_id, source)
        self._jobs.spawn(self._process(rec, url=None))

    async def fail(self, asset_id: str, message: str) -> None:
        rec = await self.store.get(asset_id)
        if rec is not None and rec.status == "processing":
            await self._finish(rec, error=message)

    # -- background -----------------------------------------------------------------

    async def _process(self, rec: AssetRecord, *, url: str | None) -> None:
        try:
            if url is not None:
                await self._fetch(rec, url)
            async with self.media.local(rec.id) as path:
                if path is None:
                    await self._finish(rec, error="The server restarted before the file arrived.")
                    return
                await self._probe(rec, path)
        except asyncio.CancelledError:
            raise
        except APIStatusError as e:
            await self._finish(rec, error=e.message)
        except Exception:
            log.exception("processing asset %s failed", rec.id)
            await self._finish(rec, error="The server failed to process the asset.")

    async def _fetch(self, rec: AssetRecord, url: str) -> None:
        dest = self.scratch / f"asset-{rec.id}"
        try:
            fetched = await self.urls.fetch(url, dest, "url")
            self.check_size(fetched.size, rec.kind or "video", "url", "url")
            rec.size = fetched.size
            await self.media.adopt(rec.id, fetched.path)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, _unlink, dest)

    async def _probe(self, rec: AssetRecord, path: Path) -> None:
        size = await asyncio.get_running_loop().run_in_executor(None, os.path.getsize, path)
        rec.size = size
        if rec.kind == "document":
            await self._finish(rec, technical={"size": size})
            return
        try:
            info = await self.pool.run(ProbeJob(str(path)), timeout=self.limits.probe_timeout)
        except JobError as e:
            await self._finish(rec, error=e.message)
            return
        except PoolBusyError:
            await self._finish(rec, error="The server was too busy to process the asset in time.")
            return
        except (WorkerDied, TimeoutError):
            await self._finish(rec, error="The file is broken or not a supported media file.")
            return
        if rec.kind in ("video", "audio"):
            rec.duration = float(info["duration"])
        await self._finish(rec, technical={"size": size, **info})

    async def _finish(
        self, rec: AssetRecord, *, error: str | None = None, technical: dict[str, Any] | None = None
    ) -> None:
        current = await self.store.get(rec.id)
        if current is None:  # deleted meanwhile
            await self.media.drop(rec.id)
            return
        rec.status = "failed" if error is not None else "ready"
        rec.error, rec.technical, rec.updated_at = error, technical, time.time()
        await self.store.put(rec)

    # -- view, page, delete, use ------------------------------------------------------

    async def get(self, owner: str, asset_id: str) -> AssetRecord:
        rec = await self.store.get(asset_id, owner=owner) if _is_id(asset_id) else None
        if rec is None:
            raise _not_found(asset_id)
        return rec

    async def page(
        self,
        owner: str,
        *,
        ids: Sequence[str],
        kinds: Sequence[str],
        filename: str | None,
        page: int,
        limit: int,
    ) -> tuple[list[AssetRecord], int]:
        for kind in kinds:
            if kind not in KINDS:
                raise invalid("asset_types", f"asset_types should be one of {', '.join(KINDS)}.")
        return await self.store.page(
            owner, ids=ids, kinds=kinds, filename=filename, offset=(page - 1) * limit, limit=limit
        )

    async def delete(self, owner: str, asset_id: str) -> None:
        """Remove the asset and its file; ``409 asset_in_use`` while it is in use."""
        await self.get(owner, asset_id)
        if asset_id in self._deleting:  # a concurrent delete of the same asset
            raise _not_found(asset_id)
        self._deleting.add(asset_id)  # from here on, acquire() refuses it
        try:
            if self._holds[asset_id] or await self._referenced(owner, asset_id):
                raise APIStatusError(
                    "The asset is used by a task that is still processing; delete it once "
                    "the task is done.",
                    code=ErrorCode.ASSET_IN_USE,
                    status=409,
                )
            await self.store.delete(asset_id)
            await self.media.drop(asset_id)
        finally:
            self._deleting.discard(asset_id)

    async def _referenced(self, owner: str, asset_id: str) -> bool:
        """Whether a ``processing`` v2 task of ``owner`` embeds ``asset_id``: the owner's
        processing tasks, newest first, paged by creation time (a task finishing meanwhile
        cannot make the scan skip another)."""
        if self.tasks is None:
            return False
        cursor: float | None = None
        offset = 0
        while True:
            recs, _ = await self.tasks.list_tasks(
                owner,
                statuses=("processing",),
                created_to=cursor,
                offset=offset,
                limit=_SCAN,
                api="v2",
            )
            if any(asset_of(r.spec) == asset_id for r in recs):
                return True
            if len(recs) < _SCAN:
                return False
            last = recs[-1].created_at
            same = sum(1 for r in recs if r.created_at == last)  # seen; they come first again
            offset = offset + same if last == cursor else same
            cursor = last

    async def acquire(
        self, owner: str, asset_id: str, *, kinds: Sequence[str], parameter: str
    ) -> AssetRecord:
        """Hold ``owner``'s ``ready`` asset of one of ``kinds`` as a media source; undo
        with :meth:`release`. ``400 parameter_invalid`` naming ``parameter`` when it is
        unknown (or another key's), not ``ready`` or of another kind."""
        if asset_id in self._deleting:
            raise source_invalid(parameter, f"The asset {_shown(asset_id)} does not exist.")
        self._holds[asset_id] += 1  # before any await: a delete now sees the hold
        try:
            rec = await self.store.get(asset_id, owner=owner) if _is_id(asset_id) else None
            _check_usable(rec, asset_id, kinds, parameter)
        except BaseException:
            self.release(asset_id)
            raise
        assert rec is not None
        return rec

    def release(self, asset_id: str) -> None:
        """Undo one :meth:`acquire`."""
        self._holds[asset_id] -= 1
        if self._holds[asset_id] <= 0:
            del self._holds[asset_id]

    def local(self, asset_id: str) -> AbstractAsyncContextManager[Path | None]:
        """The asset's file for the block, through the media store (``None`` if gone)."""
        return self.media.local(asset_id)

    @contextlib.asynccontextmanager
    async def use(
        self,
        owner: str,
        asset_id: str,
        *,
        kinds: Sequence[str] = KINDS,
        parameter: str = "asset_id",
    ) -> AsyncIterator[Path]:
        """:meth:`acquire`, the asset's local file for the block, :meth:`release`."""
        await self.acquire(owner, asset_id, kinds=kinds, parameter=parameter)
        try:
            async with self.media.local(asset_id) as path:
                if path is None:
                    gone = f"The file of asset {_shown(asset_id)} is gone."
                    raise source_invalid(parameter, gone)
                yield path
        finally:
            self.release(asset_id)


def _shown(asset_id: str) -> str:
    return repr(asset_id if len(asset_id) <= 40 else asset_id[:37] + "...")


def _check_usable(
    rec: AssetRecord | None, asset_id: str, kinds: Sequence[str], parameter: str
) -> None:
    if rec is None:
        raise source_invalid(parameter, f"The asset {_shown(asset_id)} does not exist.")
    if rec.status != "ready":
        wait = " yet; wait until it is ready" if rec.status == "processing" else ""
        raise source_invalid(
            parameter,
            f"The asset {_shown(asset_id)} is not ready{wait} (status: {rec.status}).",
        )
    if rec.kind not in kinds:
        raise source_invalid(
            parameter,
            f"The asset {_shown(asset_id)} is of type {rec.kind}; this input takes "
            f"{' or '.join(kinds)}.",
        )


def _is_id(value: str) -> bool:
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
