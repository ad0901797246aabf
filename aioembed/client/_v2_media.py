"""Local files given to v2 calls: small ones go up inline as base64, large ones need an asset.

The v2 API takes media as a URL, an asset id or a base64 string (at most 36 MB
decoded for video and audio, 32 MB for images). A path is read and encoded on a
worker thread, never on the event loop, and refused before any read when it is
over the limit: such a file goes up through an asset (multipart upload), which
the assets resource provides.
"""

from __future__ import annotations

import base64
from pathlib import Path

import anyio.to_thread
import attrs

from ..contract.v2 import MediaSource, MultiInput, V2Limits, invalid
from ..contract.v2._inputs import EmbedInput, TaskInput
from ..errors import ErrorCode, PayloadTooLargeError

__all__ = ["resolve_files"]

MB = 1024 * 1024
DEFAULT_LIMITS = V2Limits()


def _limit(kind: str, limits: V2Limits) -> int:
    if kind == "image":
        return limits.image_bytes
    if kind == "multi":
        return limits.multi_source_bytes
    return limits.base64_media_bytes


async def _inline(source: MediaSource, path: str, kind: str, limits: V2Limits) -> MediaSource:
    file = source.path
    if file is None:
        return source
    try:
        size = file.stat().st_size
    except OSError as e:
        raise invalid(path, f"{path} {str(file)!r} cannot be read: {e.strerror}.") from None
    if not file.is_file():
        raise invalid(path, f"{path} {str(file)!r} is not a file.")
    limit = _limit(kind, limits)
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
    item: TaskInput | EmbedInput, limits: V2Limits = DEFAULT_LIMITS
) -> TaskInput | EmbedInput:
    """``item`` with every :meth:`MediaSource.file` replaced by its base64 content."""
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
    resolved = await _inline(source, f"{item.input_type}.media_source", kind, limits)
    return attrs.evolve(item, source=resolved)  # type: ignore[arg-type]
