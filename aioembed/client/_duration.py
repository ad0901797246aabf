"""A media file's duration from its header, without decoding and without PyAV.

Pacing a batch by media minutes needs each file's duration before it is sent,
and the SDK core does not depend on a decoder. MP4/MOV/M4V keep it in the
``mvhd`` box inside ``moov`` (found by skipping from box header to box header,
so a 4 GB file costs a few small reads wherever ``moov`` sits) and WAV in its
``fmt `` and ``data`` chunk headers. Anything else (Matroska, WebM, AVI, a
damaged header) answers ``None``: the caller estimates and corrects with the
server's answer. Blocking: call it on a worker thread.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

__all__ = ["media_seconds"]

#: Boxes looked into on the way to ``mvhd``; every other box is skipped by its size.
_CONTAINERS = {b"moov"}
#: At most this many boxes are read per level (a damaged file cannot loop us long).
_MAX_BOXES = 4096


def media_seconds(path: Path) -> float | None:
    """The duration in seconds from the header, or ``None`` when unknown."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav(f)
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                size = path.stat().st_size
                return _mp4(f, 0, size)
    except (OSError, struct.error, ValueError):
        return None
    return None


def _boxes(f: BinaryIO, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """``(type, payload offset, payload end)`` of the boxes in ``[start, end)``."""
    found: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(found) < _MAX_BOXES:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            break
        found.append((kind, pos + header, min(pos + size, end)))
        pos += size
    return found


def _mp4(f: BinaryIO, start: int, end: int) -> float | None:
    for kind, payload, box_end in _boxes(f, start, end):
        if kind == b"mvhd":
            f.seek(payload)
            version = f.read(4)[0]
            if version == 1:
                _, _, scale, duration = struct.unpack(">QQIQ", f.read(28))
            else:
                _, _, scale, duration = struct.unpack(">IIII", f.read(16))
            return duration / scale if scale else None
        if kind in _CONTAINERS:
            return _mp4(f, payload, box_end)
    return None


def _wav(f: BinaryIO) -> float | None:
    byte_rate = None
    pos = 12
    for _ in range(_MAX_BOXES):
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return None
        kind, size = struct.unpack("<4sI", header)
        if kind == b"fmt ":
            byte_rate = struct.unpack("<HHII", f.read(12))[3]
        elif kind == b"data":
            return size / byte_rate if byte_rate else None
        pos += 8 + size + (size & 1)
    return None
