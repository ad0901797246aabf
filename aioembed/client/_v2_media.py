"""Local files given to v2 calls: small ones go up inline as base64, large ones as an asset.

The v2 API takes media as a URL, an asset id or a base64 string (at most 36 MB
decoded for video and audio, 32 MB for images). A path within the limit is read
and encoded on a worker thread, never on the event loop. A larger one is handed,
before any read, to the caller's ``upload`` (``client.assets.upload``: direct or
multipart, resumable, returns once the asset is ``ready``) and the request names
the asset; without an ``upload`` (sync embeds, whose media limits apply to assets
too) it is refused with a clear error.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio.to_thread
import attrs

from ..contract.v2 import MediaSource, MultiInput, V2Limits, invalid
from ..contract.v2._inputs import EmbedInput, TaskInput
from ..errors import ErrorCode, PayloadTooLargeError

__all__ = ["Upload", "inline_limit", "resolve_files"]

MB = 1024 * 1024
DEFAULT_LIMITS = V2Limits()
#: ``upload(path, file_type) -> asset id`` of a ``ready`` asset holding the file.
Upload = Callable[[Path, str], Awaitable[str]]


def inline_limit(kind: str, limits: V2Limits = DEFAULT_LIMITS) -> int:
    """The largest file of ``kind`` (an ``input_type``) sent inline, in bytes."""
    if kind == "image":
        return limits.image_bytes
    if kind == "multi":
        return limits.multi_source_bytes
    return limits.base64_media_bytes


async def _inline(
    source: MediaSource, path: str, kind: str, limits: V2Limits, upload: Upload | None = None
) -> MediaSource:
    file = source.path
    if file is None:
        return source
    try:
        size = file.stat().st_size
    except OSError as e:
        raise invalid(path, f"{path} {str(file)!r} cannot be read: {e.strerror}.") from None
    if not file.is_file():
        raise invalid(path, f"{path} {str(file)!r} is not a file.")
    limit = inline_limit(kind, limits)
    if size > limit and upload is not None:
        return MediaSource.asset(await upload(file, kind))
    if size > limit:
        raise PayloadTooLargeError(
            f"{file.name} is {size / MB:.1f} MB; a local file is sent inline as base64 only up "
            f"to {limit // MB} MB. Upload larger files as an asset and pass "
            "MediaSource.asset(asset_id).",
            code=ErrorCode.CONTENT_TOO_LARGE,
            details={"parameter": path},
        )
    data = await anyio.to_thread.run_sync(_encode, file)
    return MediaSource.base64(data)


def _encode(file: Path) -> str:
    return base64.b64encode(file.read_bytes()).decode("ascii")


async def resolve_files(
    item: TaskInput | EmbedInput, limits: V2Limits = DEFAULT_LIMITS, upload: Upload | None = None
) -> TaskInput | EmbedInput:
    """``item`` with every :meth:`MediaSource.file` replaced by its base64 content, or by
    the asset ``upload`` made of it when over the inline limit (not for ``multi_input``)."""
    if isinstance(item, MultiInput):
        sources = [
            attrs.evolve(
                s,
                source=await _inline(s.source, f"multi_input.media_sources[{i}]", "multi", limits),
            )
            for i, s in enumerate(item.media_sources)
        ]
        return attrs.evolve(item, media_sources=tuple(sources))
    source = getattr(item, "source", None)
    if not isinstance(source, MediaSource) or source.path is None:
        return item
    kind = "image" if item.input_type in ("image", "text_image") else item.input_type
    resolved = await _inline(source, f"{item.input_type}.media_source", kind, limits, upload)
    return attrs.evolve(item, source=resolved)  # type: ignore[arg-type]
