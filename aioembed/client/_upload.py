"""Upload bodies that stream from disk and can be sent again on retry.

A file is read in chunks on a worker thread, never whole and never on the event
loop; each attempt opens its own reader, so a retried create re-sends the full
body with every form field (the official SDK drops them).
"""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any, Union

import aiohttp
import anyio.to_thread
import attrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from .._params import invalid
from ..errors import ErrorCode, PayloadTooLargeError

__all__ = ["FileInput", "ProgressCallback", "UploadSource", "as_source"]

CHUNK = 512 * 1024

#: What ``create(video_file=...)`` accepts.
FileInput = Union[
    str, os.PathLike[str], bytes, bytearray, memoryview, IO[bytes], AsyncIterable[bytes]
]
#: Called as ``progress(bytes_sent, total_bytes_or_None)`` after each chunk.
ProgressCallback = Callable[[int, int | None], object]


@attrs.frozen
class UploadSource:
    """A body that knows its size and how to produce a fresh chunk stream."""

    filename: str
    size: int | None
    chunks: Callable[[], AsyncIterator[bytes]]
    replayable: bool


async def _open(path: Path) -> IO[bytes]:
    """``path.open("rb")`` on a worker thread, closing the file if the caller is cancelled
    while the thread opens it (aiohttp cancels a body writer at once when an early answer
    such as a 429 arrives mid-upload): the result would otherwise be dropped, unclosed."""
    opening = asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
    try:
        return await asyncio.shield(opening)
    except BaseException:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def _read_path(path: Path) -> AsyncIterator[bytes]:
    f = await _open(path)
    try:
        while chunk := await anyio.to_thread.run_sync(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


async def _read_file(f: IO[bytes], start: int | None) -> AsyncIterator[bytes]:
    if start is not None:
        await anyio.to_thread.run_sync(f.seek, start)
    while chunk := await anyio.to_thread.run_sync(f.read, CHUNK):
        yield chunk


async def _read_bytes(data: memoryview) -> AsyncIterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield bytes(data[i : i + CHUNK])


def _once(stream: AsyncIterable[bytes]) -> Callable[[], AsyncIterator[bytes]]:
    used = False

    def chunks() -> AsyncIterator[bytes]:
        nonlocal used
        if used:
            raise RuntimeError("an async-iterable upload body cannot be sent twice")
        used = True
        return aiter(stream)

    return chunks


def wire_filename(name: str, fallback: str) -> str:
    """The file name as sent in the multipart header: control, format and unpaired
    surrogate characters (a name that is not valid UTF-8) become ``_``. They cannot be
    sent in a header at all; the file itself is still read from its real path."""
    cleaned = "".join("_" if unicodedata.category(c).startswith("C") else c for c in name)
    return cleaned or fallback


def as_source(value: FileInput, *, name: str, max_bytes: int) -> UploadSource:
    """Check a file input before any byte is sent and wrap it as an :class:`UploadSource`.

    Raises ``ParameterError`` (``parameter_invalid``) for a missing or unreadable
    file and :class:`PayloadTooLargeError` (``video_filesize_too_large``) past
    ``max_bytes``, as the server would.
    """
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise invalid(name, f"{name} {str(path)!r} cannot be read: {e.strerror}.") from None
        if not path.is_file():
            raise invalid(name, f"{name} {str(path)!r} is not a file.")
        source = UploadSource(
            wire_filename(path.name, name), size, lambda: _read_path(path), True
        )
    elif isinstance(value, (bytes, bytearray, memoryview)):
        view = memoryview(value).cast("B")
        source = UploadSource(name, len(view), lambda: _read_bytes(view), True)
    elif isinstance(value, AsyncIterable):
        source = UploadSource(name, None, _once(value), False)
    elif hasattr(value, "read"):
        f = value
        start: int | None = None
        size_: int | None = None
        if f.seekable():
            start = f.tell()
            size_ = f.seek(0, os.SEEK_END) - start
            f.seek(start)
        filename = wire_filename(Path(str(getattr(f, "name", name))).name, name)
        source = UploadSource(filename, size_, lambda: _read_file(f, start), start is not None)
    else:
        raise TypeError(
            f"{name} must be a path, bytes, a binary file or an async iterable of bytes, "
            f"not {type(value).__name__}"
        )
    if source.size is not None and source.size > max_bytes:
        raise PayloadTooLargeError(
            f"The {name} is {source.size} bytes; the limit is {max_bytes} bytes.",
            code=ErrorCode.VIDEO_FILESIZE_TOO_LARGE,
        )
    return source


class StreamPayload(Payload):
    """An aiohttp payload that pulls chunks from an :class:`UploadSource` and reports progress."""

    def __init__(self, source: UploadSource, progress: ProgressCallback | None, **kw: Any) -> None:
        super().__init__(source, filename=source.filename, **kw)
        self._source = source
        self._size = source.size
        self._progress = progress

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed upload cannot be decoded")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        sent = 0
        stream = self._source.chunks()
        try:
            async for chunk in stream:
                await writer.write(chunk)
                sent += len(chunk)
                if self._progress is not None:
                    self._progress(sent, self._size)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


def build_form(
    fields: list[tuple[str, str]],
    file_field: str | None = None,
    source: UploadSource | None = None,
    progress: ProgressCallback | None = None,
) -> aiohttp.FormData:
    """A fresh multipart body: fields first, file last, so the server can reject early."""
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in fields:
        form.add_field(key, value)
    if file_field is not None and source is not None:
        form.add_field(
            file_field,
            StreamPayload(source, progress, content_type="application/octet-stream"),
            filename=source.filename,
        )
    return form
