"""Multipart upload sessions (``/assets/multipart-uploads``): the domain without HTTP.

A session reserves a ``multipart`` asset, hands out part URLs on our own server
signed with HMAC-SHA256 under a secret kept (0600) in the data directory, so a
restart keeps them valid. A URL signs ``PUT\\n{upload_id}\\n{index}\\n{expires}``:
it serves one chunk of one session until it expires; a second PUT on a used
URL is refused unless its bytes are identical (a retry). Parts go to a
:class:`~._parts.PartStore`; once every chunk is reported they are joined
(streamed, in the executor) and the asset is probed. Expired sessions drop
their parts and fail their asset (:meth:`UploadService.sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._params import invalid
from ..contract.assets import CHUNK_SIZE, MAX_CHUNKS, SESSION_TTL, URL_TTL, URLS_PER_REQUEST
from ..errors import APIStatusError, ErrorCode, NotFoundError, ParameterError
from ._assets import AssetService, new_id
from ._background import BackgroundJobs
from ._config import ServerConfig
from ._parts import PartStore, PartTooLargeError
from ._upload_store import ChunkRecord, UploadRecord, UploadStore

__all__ = ["UploadLimits", "UploadService", "load_secret"]

log = logging.getLogger("aioembed.server.uploads")


@attrs.frozen
class UploadLimits:
    """Multipart session limits: the contract's unless configured (:meth:`from_config`)."""

    chunk_size: int = CHUNK_SIZE
    max_chunks: int = MAX_CHUNKS
    url_ttl: float = URL_TTL
    session_ttl: float = SESSION_TTL
    urls_per_request: int = URLS_PER_REQUEST
    sweep_interval: float = 60.0

    @classmethod
    def from_config(cls, config: ServerConfig) -> UploadLimits:
        return cls(
            chunk_size=config.upload_chunk_size,
            max_chunks=config.upload_max_chunks,
            url_ttl=config.upload_url_ttl,
            session_ttl=config.upload_session_ttl,
            sweep_interval=config.upload_sweep_interval,
        )


def load_secret(path: Path) -> bytes:
    """The signing secret, created once (0600, exclusive) and kept across restarts."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    secret = secrets.token_bytes(32)
    try:
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    return secret


def _forbidden(code: ErrorCode, message: str) -> APIStatusError:
    return APIStatusError(message, code=code, status=403)


def _not_found(upload_id: str) -> NotFoundError:
    shown = upload_id if len(upload_id) <= 40 else upload_id[:37] + "..."
    return NotFoundError(f"The upload {shown!r} does not exist.", code=ErrorCode.RESOURCE_NOT_EXIST)


@attrs.frozen
class Report:
    processed: int
    duplicates: int
    total_completed: int
    complete: bool


class UploadService:
    def __init__(
        self,
        *,
        store: UploadStore,
        parts: PartStore,
        assets: AssetService,
        secret: bytes,
        scratch: Path,
        limits: UploadLimits,
    ) -> None:
        self.store = store
        self.parts = parts
        self.assets = assets
        self.secret = secret
        self.scratch = scratch
        self.limits = limits
        self._jobs = BackgroundJobs()
        #: Part bodies received whole, by upload id (tests count re-sent parts).
        self.received: dict[str, int] = {}

    async def start(self) -> None:
        await self.sweep()
        await self.parts.sweep(await self.store.ids())
        for upload_id in await self.store.ids():
            rec = await self.store.get(upload_id)
            if rec is not None and rec.status == "completed":
                self._jobs.spawn(self._assemble(rec))  # a restart between report and join

    async def close(self) -> None:
        await self._jobs.close()

    # -- signing --------------------------------------------------------------------

    def sign(self, upload_id: str, index: int, expires: int) -> str:
        message = f"PUT\n{upload_id}\n{index}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def urls(
        self, rec: UploadRecord, base: str, start: int, count: int
    ) -> tuple[list[tuple[int, str]], int]:
        """Part URLs for chunks ``start``.. (at most to the last), and their expiry (epoch s)."""
        expires = int(min(time.time() + self.limits.url_ttl, rec.expires_at))
        out = []
        for index in range(start, min(start + count, rec.total_chunks + 1)):
            sig = self.sign(rec.id, index, expires)
            out.append(
                (
                    index,
                    (
                        f"{base}/multipart-uploads/{rec.id}/chunks/{index}"
                        f"?expires={expires}&signature={sig}"
                    ),
                )
            )
        return out, expires

    # -- create, get, page ------------------------------------------------------------

    async def create(
        self,
        owner: str,
        *,
        filename: str,
        kind: str,
        total_size: int,
        user_metadata: dict[str, Any] | None,
    ) -> UploadRecord:
        self.assets.check_size(total_size, kind, "multipart", "total_size")
        chunk = max(self.limits.chunk_size, math.ceil(total_size / self.limits.max_chunks))
        asset = await self.assets.reserve(owner, filename, kind, user_metadata)
        now = time.time()
        rec = UploadRecord(
            id=new_id(),
            owner=owner,
            asset_id=asset.id,
            filename=filename,
            kind=kind,
            total_size=total_size,
            chunk_size=chunk,
            total_chunks=max(1, math.ceil(total_size / chunk)),
            status="active",
            created_at=now,
            updated_at=now,
            expires_at=now + self.limits.session_ttl,
        )
        await self.store.put(rec)
        return rec

    async def get(self, owner: str, upload_id: str) -> UploadRecord:
        rec = await self.store.get(upload_id, owner=owner) if _is_id(upload_id) else None
        if rec is None:
            raise _not_found(upload_id)
        if rec.status == "active" and rec.expires_at < time.time():
            await self._expire(rec)
        return rec

    async def active(self, owner: str, upload_id: str) -> UploadRecord:
        rec = await self.get(owner, upload_id)
        if rec.status == "expired":
            raise ParameterError(
                "The upload session has expired; start a new upload.",
                code=ErrorCode.UPLOAD_SESSION_EXPIRED,
            )
        return rec

    async def page(self, owner: str, page: int, limit: int) -> tuple[list[UploadRecord], int]:
        return await self.store.page(owner, (page - 1) * limit, limit)

    async def chunk_states(self, rec: UploadRecord) -> dict[int, ChunkRecord]:
        return await self.store.chunks(rec.id)

    # -- part PUT ---------------------------------------------------------------------

    async def put_part(
        self,
        upload_id: str,
        index: int,
        *,
        expires: str,
        signature: str,
        length: int | None,
        body: AsyncIterator[bytes],
    ) -> str:
        """Check the signature, store the part; its MD5 hex (the ETag)."""
        rec = await self.store.get(upload_id) if _is_id(upload_id) else None
        try:
            expiry = int(expires)
        except ValueError:
            expiry = -1
        if rec is None or not 1 <= index <= rec.total_chunks or expiry < 0:
            raise _forbidden(ErrorCode.PRESIGNED_URL_INVALID, "The presigned URL is invalid.")
        if not hmac.compare_digest(self.sign(upload_id, index, expiry), signature):
            raise _forbidden(ErrorCode.PRESIGNED_URL_INVALID, "The presigned URL is invalid.")
        if expiry < time.time() or rec.status == "expired":
            raise _forbidden(ErrorCode.PRESIGNED_URL_EXPIRED, "The presigned URL has expired.")
        want = rec.part_size(index)
        if length is not None and length != want:
            await self._fail_chunk(rec, index, f"The chunk should be {want} bytes, not {length}.")
            raise invalid("chunk", f"The chunk should be exactly {want} bytes.")
        before = await self.store.chunk(upload_id, index)
        used = before is not None and before.signature == signature
        if before is not None and before.status == "completed" and not used:
            return before.etag or ""  # already reported: changes nothing
        try:
            part = await self.parts.write(upload_id, index, body, limit=want)
        except PartTooLargeError:
            part = None
        if part is not None:
            self.received[upload_id] = self.received.get(upload_id, 0) + 1
        if part is None or part.size != want:
            await self._fail_chunk(rec, index, f"The chunk should be {want} bytes.")
            raise invalid("chunk", f"The chunk should be exactly {want} bytes.")
        if used:
            assert before is not None
            if part.md5 != before.etag:
                raise _forbidden(
                    ErrorCode.PRESIGNED_URL_INVALID, "The presigned URL was used already."
                )
            return part.md5
        now = time.time()
        await self.store.put_chunk(
            ChunkRecord(
                upload_id, index, "uploaded", part.md5, part.size, signature, 0, now, now, None
            )
        )
        return part.md5

    async def _fail_chunk(self, rec: UploadRecord, index: int, why: str) -> None:
        now = time.time()
        await self.store.put_chunk(
            ChunkRecord(rec.id, index, "failed", None, None, None, 0, None, now, why)
        )

    # -- report -----------------------------------------------------------------------

    async def report(self, rec: UploadRecord, items: Sequence[tuple[int, str, int]]) -> Report:
        """Mark reported chunks ``completed`` (duplicates counted, nothing changed).

        Reports of a session run one at a time (across replicas too, when the store is
        shared): two racing reports must not both see the last chunk arrive and join
        the parts twice."""
        async with self.store.serialised(rec.id):
            return await self._report(rec, items)

    async def _report(self, rec: UploadRecord, items: Sequence[tuple[int, str, int]]) -> Report:
        chunks = await self.store.chunks(rec.id)
        seen: set[int] = set()
        processed = duplicates = 0
        changed: list[ChunkRecord] = []
        bad: list[str] = []
        now = time.time()
        for index, proof, size in items:
            if not 1 <= index <= rec.total_chunks:
                raise invalid(
                    "completed_chunks.chunk_index",
                    f"chunk_index should be 1 to {rec.total_chunks}.",
                )
            chunk = chunks.get(index)
            if (chunk is not None and chunk.status == "completed") or index in seen:
                duplicates += 1
                continue
            seen.add(index)
            if chunk is None or chunk.etag is None:
                bad.append(f"chunk {index} was not uploaded")
                continue
            if proof.strip('"') != chunk.etag or size != chunk.size:
                chunk.status, chunk.error, chunk.updated_at = (
                    "failed",
                    "proof or size mismatch",
                    now,
                )
                changed.append(chunk)
                bad.append(f"chunk {index}: proof or chunk_size does not match the upload")
                continue
            chunk.status, chunk.reported, chunk.updated_at, chunk.error = "completed", 1, now, None
            changed.append(chunk)
            processed += 1
        if changed:
            await self.store.put_chunks(changed)
        if bad:
            raise invalid("completed_chunks", "; ".join(bad)[:300] + ".")
        total = sum(
            1 for c in (await self.store.chunks(rec.id)).values() if c.status == "completed"
        )
        complete = total == rec.total_chunks
        current = await self.store.get(rec.id)
        if complete and current is not None and current.status == "active":
            rec.status, rec.updated_at = "completed", now
            await self.store.put(rec)
            self._jobs.spawn(self._assemble(rec))
        return Report(processed, duplicates, total, complete)

    async def _assemble(self, rec: UploadRecord) -> None:
        dest = self.scratch / f"multipart-{rec.id}"
        try:
            # One join per session: another replica (or this one before a restart) may
            # have joined it already, and dropped its parts after.
            async with self.store.serialised(rec.id):
                try:
                    await self.parts.join(rec.id, rec.total_chunks, dest)
                except FileNotFoundError:
                    log.warning("upload %s: parts gone, joined already", rec.id)
                    return
                await self.assets.complete(rec.asset_id, dest)
                await self.parts.drop(rec.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("assembling upload %s failed", rec.id)
            await self.assets.fail(rec.asset_id, "The server could not assemble the upload.")
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.get_running_loop().run_in_executor(None, dest.unlink)

    # -- expiry -------------------------------------------------------------------------

    async def _expire(self, rec: UploadRecord) -> None:
        rec.status, rec.updated_at = "expired", time.time()
        await self.store.put(rec)
        # The asset fails before its parts go: once they are gone, it says why.
        await self.assets.fail(rec.asset_id, "The upload session expired before it completed.")
        await self.parts.drop(rec.id)

    async def sweep(self) -> int:
        """Expire sessions past ``expires_at``: drop their parts, fail their asset."""
        expired = await self.store.expired(time.time())
        for rec in expired:
            if rec.status == "completed":
                continue
            await self._expire(rec)
        return len(expired)

    async def run_sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweeping upload sessions failed")


def _is_id(value: str) -> bool:
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)
