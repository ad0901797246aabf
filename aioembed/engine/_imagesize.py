"""An image's pixel size from its header, before anything is decoded.

FFmpeg fills in a PNG's or JPEG's size by decoding the whole picture while it
opens the file, so a 2 MB PNG of 16000x16000 RGBA64 pixels costs gigabytes
before a limit could look at it. These readers take the size from the first
bytes instead (the PNG ``IHDR`` chunk, the JPEG start-of-frame segment).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO

__all__ = ["image_size"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers (baseline, progressive, lossless...): not DHT, JPG or DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Segments read past while looking for the start of frame (EXIF thumbnails, ICC...).
_MAX_JPEG_SEGMENTS = 256


def image_size(source: str | os.PathLike[str] | bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG from its header; ``None`` for other formats
    or a header that does not parse (the decoder then says what is wrong)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _read(io.BytesIO(bytes(source)))
    try:
        with open(source, "rb") as f:
            return _read(f)
    except OSError:
        return None


def _read(f: BinaryIO) -> tuple[int, int] | None:
    head = f.read(24)
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head.startswith(b"\xff\xd8"):
        f.seek(2)
        return _jpeg_size(f)
    return None


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    for _ in range(_MAX_JPEG_SEGMENTS):
        marker = f.read(2)
        while marker[:1] == b"\xff" and marker[1:2] == b"\xff":
            marker = marker[1:] + f.read(1)  # fill bytes
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind == 0x01 or 0xD0 <= kind <= 0xD7:
            continue  # markers without a length
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if kind in _SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            height, width = struct.unpack(">HH", body[1:5])
            return int(width), int(height)
        if length < 2:
            return None
        f.seek(length - 2, io.SEEK_CUR)
    return None
