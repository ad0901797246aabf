"""Resumable multipart uploads to ``/assets/multipart-uploads``.

Parts are streamed straight from the source file at their offsets (``os.pread``
of 1 MiB slices on a worker thread; no temporary copies, no part held whole),
``part_concurrency`` in flight, each also holding one of the client's
``Limits.max_uploads`` slots. A part PUT goes
to the presigned URL with the server's ``upload_headers`` and never the API
key (the URL may be another origin); transient failures are retried, an
expired or refused URL is refreshed. Finished parts are reported as they
finish, batched while a report is in flight (so a crash loses at most the
parts in flight and those awaiting that report); ``progress`` counts the bytes
of reported parts, what a rerun will find on the server. Bodies both ways are
the contract's models (:mod:`aioembed.contract.assets`).

Resume: a small pointer file (``state_dir``, default
``$XDG_CACHE_HOME/aioembed/uploads``, 0600) keyed by the file's path, size and
mtime and the API base URL holds the upload id. A rerun asks the server which
chunks are ``completed`` and sends only the others. The pointer goes once the
upload completes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anyio

from .._retry import Backoff
from ..contract.assets import (
    ChunkReport,
    ChunkStatus,
    PartUrl,
    PartUrls,
    PartUrlsRequest,
    Report,
    ReportResult,
    UploadCreate,
    UploadCreated,
    UploadDetail,
    UploadStatus,
    structure,
    unstructure,
)
from ..errors import AioEmbedError, APIStatusError
from ._transport import Transport
from ._upload import ProgressCallback

__all__ = ["MultipartUploadError", "upload_multipart"]

log = logging.getLogger("aioembed")

T = TypeVar("T")

_REPORT_BATCH = 8
#: Bytes read (and held) at a time per part in flight.
_PIECE = 1 << 20
_PART_ATTEMPTS = 5
#: Refresh a URL that expires sooner than this (seconds).
_URL_MARGIN = 60.0


class MultipartUploadError(AioEmbedError):
    """A part could not be uploaded after its retries."""


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aioembed" / "uploads"


def _fingerprint(path: Path, base_url: str) -> str:
    st = path.stat()
    key = f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{base_url}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _save(state_file: Path, state: dict[str, Any]) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = state_file.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_file)


def _load(state_file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("upload_id"), str) else None


def _json(body: object) -> Callable[[], aiohttp.payload.Payload]:
    """A request model as its JSON payload (made again for every attempt)."""
    data = unstructure(body)
    return lambda: aiohttp.JsonPayload(data)


def _parser(cls: type[T]) -> Callable[[Any], T]:
    return lambda data: structure(data, cls)


async def _pieces(fd: int, offset: int, size: int, md5: Any) -> AsyncIterator[bytes]:
    """A part's bytes in ``_PIECE`` slices read at their offsets off the event loop, hashed
    as they go: memory per part in flight is a slice, not the part."""
    done = 0
    while done < size:
        want = min(_PIECE, size - done)
        data = await anyio.to_thread.run_sync(os.pread, fd, want, offset + done)
        if len(data) != want:
            raise MultipartUploadError("the file changed size during the upload")
        md5.update(data)
        done += want
        yield data


class _Upload:
    def __init__(
        self,
        transport: Transport,
        path: Path,
        state: dict[str, Any],
        part_concurrency: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.t = transport
        self.path = path
        self.state = state
        self.id: str = state["upload_id"]
        self.size: int = state["total_size"]
        self.chunk: int = state["chunk_size"]
        self.total: int = state["total_chunks"]
        self.headers: dict[str, str] = dict(state.get("upload_headers") or {})
        self.concurrency = max(1, part_concurrency)
        self.progress = progress
        self.urls: dict[int, tuple[str, float]] = {}
        self.pending: list[ChunkReport] = []
        self.sent_bytes = 0
        self.done_url: str | None = None
        self._report_lock = anyio.Lock()
        self._url_lock = anyio.Lock()

    def part_size(self, index: int) -> int:
        return self.chunk if index < self.total else self.size - self.chunk * (self.total - 1)

    def add_urls(self, items: Iterable[PartUrl]) -> None:
        for u in items:
            self.urls[u.chunk_index] = (u.url, u.expires_at.timestamp())

    async def url(self, index: int, *, fresh: bool = False) -> str:
        async with self._url_lock:
            have = self.urls.get(index)
            if fresh or have is None or have[1] - time.time() < _URL_MARGIN:
                count = min(50, self.total - index + 1)
                answer = await self.t.request(
                    "POST",
                    f"assets/multipart-uploads/{self.id}/presigned-urls",
                    _parser(PartUrls),
                    form=_json(PartUrlsRequest(index, count)),
                )
                self.add_urls(answer.upload_urls)
            return self.urls[index][0]

    async def completed(self) -> set[int]:
        done: set[int] = set()
        page = 1
        while True:
            detail = await self.t.request(
                "GET",
                f"assets/multipart-uploads/{self.id}",
                _parser(UploadDetail),
                params=[("page", str(page)), ("page_limit", "50")],
            )
            chunks = detail.uploaded_chunks
            done.update(c.index for c in chunks if c.status is ChunkStatus.COMPLETED)
            if detail.status is UploadStatus.COMPLETED:
                return set(range(1, self.total + 1))
            if not chunks:
                return done
            page += 1

    async def put(self, index: int) -> None:
        size = self.part_size(index)
        session = self.t.session()
        backoff = Backoff(initial=0.25, maximum=5.0)
        # An explicit length: the body is streamed, and presigned object-store URLs
        # refuse chunked transfer encoding.
        headers = {
            "Content-Type": "application/octet-stream",
            **self.headers,
            "Content-Length": str(size),
        }
        fresh = False
        fd = await anyio.to_thread.run_sync(os.open, self.path, os.O_RDONLY)
        try:
            for attempt in range(1, _PART_ATTEMPTS + 1):
                url = await self.url(index, fresh=fresh)
                fresh = False
                md5 = hashlib.md5(usedforsecurity=False)
                body = _pieces(fd, (index - 1) * self.chunk, size, md5)
                try:
                    async with self.t.uploads, session.put(url, data=body, headers=headers) as r:
                        answer = await r.read()
                        if r.status == 403:
                            fresh = True  # expired or refused: a new URL
                            continue
                        if r.status >= 500 or r.status == 429:
                            raise aiohttp.ClientResponseError(r.request_info, (), status=r.status)
                        if r.status >= 400:
                            raise MultipartUploadError(
                                f"part {index} refused ({r.status}): {answer[:200]!r}"
                            )
                        etag = r.headers.get("ETag", "").strip('"')
                except (aiohttp.ClientError, TimeoutError) as e:
                    if attempt == _PART_ATTEMPTS:
                        raise MultipartUploadError(f"part {index} failed: {e!r}") from e
                    await anyio.sleep(backoff.delay(attempt))
                    continue
                if etag != md5.hexdigest():
                    raise MultipartUploadError(f"part {index}: the server's ETag does not match")
                await self.finished(index, etag, size)
                return
        finally:
            await anyio.to_thread.run_sync(os.close, fd)
        raise MultipartUploadError(f"part {index}: every presigned URL was refused")

    async def finished(self, index: int, etag: str, size: int) -> None:
        self.pending.append(ChunkReport(chunk_index=index, proof=etag, chunk_size=size))
        # Report at once unless a report is on its way; parts finishing meanwhile
        # make the next batch. A crash then loses at most the parts in flight and
        # those waiting for that report.
        if not self._report_lock.locked() or len(self.pending) >= _REPORT_BATCH:
            await self.report()

    async def report(self) -> None:
        async with self._report_lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            answer = await self.t.request(
                "POST",
                f"assets/multipart-uploads/{self.id}",
                _parser(ReportResult),
                form=_json(Report(batch)),
            )
            if answer.url:
                self.done_url = answer.url
            # Progress counts reported bytes (a call per part): what a rerun finds.
            for chunk in batch:
                self.sent_bytes += chunk.chunk_size
                if self.progress is not None:
                    self.progress(self.sent_bytes, self.size)

    async def run(self, missing: list[int]) -> None:
        send, receive = anyio.create_memory_object_stream[int](len(missing) or 1)
        for index in missing:
            send.send_nowait(index)
        send.close()

        async def worker() -> None:
            async with receive.clone() as queue:
                async for index in queue:
                    await self.put(index)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(self.concurrency, len(missing) or 1)):
                    tg.start_soon(worker)
        finally:
            receive.close()
        await self.report()


async def upload_multipart(
    transport: Transport,
    path: Path,
    *,
    filename: str,
    file_type: str,
    user_metadata: dict[str, Any] | None,
    part_concurrency: int,
    progress: ProgressCallback | None,
    state_dir: Path | None,
) -> str:
    """Upload ``path`` (resuming an earlier run's session); returns the asset id."""
    state_file = (
        state_dir or _default_state_dir()
    ) / f"{_fingerprint(path, transport.base_url)}.json"
    state = await anyio.to_thread.run_sync(_load, state_file)
    size = path.stat().st_size
    done: set[int] = set()
    upload: _Upload | None = None
    if state is not None:
        upload = _Upload(transport, path, state, part_concurrency, progress)
        try:
            done = await upload.completed()
        except APIStatusError as e:
            if e.status != 404:
                raise
            upload = None
        else:
            log.info("resuming upload %s: %d of %d parts there", upload.id, len(done), upload.total)
    if upload is not None and len(done) < upload.total:
        # An expired session cannot be resumed.
        with contextlib.suppress(APIStatusError):
            await upload.url(min(set(range(1, upload.total + 1)) - done), fresh=True)
        if not upload.urls:
            upload = None
    if upload is None:
        body = UploadCreate(
            filename=filename, type=file_type, total_size=size, user_metadata=user_metadata
        )
        created = await transport.request(
            "POST",
            "assets/multipart-uploads",
            _parser(UploadCreated),
            form=_json(body),
            idempotent=False,
        )
        state = {
            "upload_id": created.upload_id,
            "asset_id": created.asset_id,
            "total_size": size,
            "chunk_size": created.chunk_size,
            "total_chunks": created.total_chunks,
            "upload_headers": created.upload_headers,
        }
        await anyio.to_thread.run_sync(_save, state_file, state)
        upload = _Upload(transport, path, state, part_concurrency, progress)
        upload.add_urls(created.upload_urls)
        done = set()
    missing = [i for i in range(1, upload.total + 1) if i not in done]
    upload.sent_bytes = sum(upload.part_size(i) for i in done)
    await upload.run(missing)
    with contextlib.suppress(OSError):
        await anyio.to_thread.run_sync(state_file.unlink)
    return str(upload.state["asset_id"])
