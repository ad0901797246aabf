"""Helpers shared by the reliability, flood, fuzz, security and corrupt-media suites.

Nothing here fakes anything: media are real files, servers are real processes,
and figures (latencies, RSS, case counts) are measured, then written to
``$AIOEMBED_FIGURES`` (a JSON-lines file) when that variable is set, so a CI
run can publish them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import psutil

from aioembed import AsyncClient
from aioembed.models import EmbedTask
from aioembed.samples import retag as remux

__all__ = [
    "FIGURES",
    "RssSampler",
    "assert_contract_error",
    "client_tasks",
    "distinct_videos",
    "drop_box",
    "list_all",
    "padded",
    "percentile",
    "report",
    "set_mkv_duration",
    "vectors_of",
]

FIGURES: dict[str, Any] = {}


def report(name: str, **figures: Any) -> None:
    """Record measured figures: kept in :data:`FIGURES`, printed (``-s`` shows them) and
    appended to ``$AIOEMBED_FIGURES`` when set."""
    FIGURES[name] = figures
    line = json.dumps({"scenario": name, **figures}, sort_keys=True, default=str)
    print(f"\nFIGURES {line}")
    target = os.environ.get("AIOEMBED_FIGURES")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


def distinct_videos(base: Path, folder: Path, n: int, prefix: str = "v") -> list[Path]:
    """``n`` files with different bytes and the same pictures and sound as ``base``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [remux(base, folder / f"{prefix}{i:03d}.mp4", f"{prefix}{i}") for i in range(n)]


def padded(src: Path, dst: Path, size: int) -> Path:
    """A copy of an mp4 grown to ``size`` bytes with a sparse hole after its last box.

    Demuxers stop at the trailing zero-sized box, so the file still decodes to the
    same frames; on the sending side the padding costs no disk space.
    """
    shutil.copyfile(src, dst)
    with dst.open("r+b") as f:
        f.truncate(size)
    return dst


def _boxes(data: bytes) -> list[tuple[int, int, bytes]]:
    """Top-level ISO-BMFF boxes as (offset, size, type)."""
    out, i = [], 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
        elif size == 0:
            size = len(data) - i
        if size < 8:
            break
        out.append((i, size, kind))
        i += size
    return out


def drop_box(data: bytes, kind: bytes) -> bytes:
    """The mp4 without its top-level ``kind`` box (``b"moov"``: a truncated upload)."""
    boxes = _boxes(data)
    assert any(k == kind for _, _, k in boxes), [k for _, _, k in boxes]
    return b"".join(data[o : o + s] for o, s, k in boxes if k != kind)


def set_mkv_duration(data: bytes, seconds: float) -> bytes:
    """A Matroska file whose Segment Info declares ``seconds`` (the frames stay as they are)."""
    i = data.find(b"\x44\x89")  # Duration element id
    assert i > 0, "no Duration element"
    out = bytearray(data)
    size = out[i + 2]
    if size == 0x88:
        out[i + 3 : i + 11] = struct.pack(">d", seconds * 1000.0)  # default 1 ms timecode scale
    elif size == 0x84:
        out[i + 3 : i + 7] = struct.pack(">f", seconds * 1000.0)
    else:  # pragma: no cover - PyAV writes one of the two
        raise AssertionError(f"unexpected Duration size byte {size:#x}")
    return bytes(out)


def vectors_of(task: EmbedTask) -> dict[tuple[Any, ...], bytes]:
    """Every segment's float32 bytes keyed by (scope, option, start, end)."""
    return {
        (s.embedding_scope, s.embedding_option, s.start_offset_sec, s.end_offset_sec): (
            s.array().tobytes()
        )
        for s in task.segments
    }


async def list_all(client: AsyncClient, **kw: Any) -> list[EmbedTask]:
    return [t async for t in client.embed.tasks.list(page_limit=50, **kw)]


def client_tasks() -> list[asyncio.Task[Any]]:
    """Running asyncio tasks started by the SDK (other than the current one)."""
    found = []
    for t in asyncio.all_tasks():
        if t is asyncio.current_task() or t.done():
            continue
        code = getattr(t.get_coro(), "cr_code", None)
        if code is not None and "aioembed/client" in code.co_filename.replace(os.sep, "/"):
            found.append(t)
    return found


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def assert_contract_error(status: int, body: Any, headers: Any = None) -> None:
    """An error answer in the contract's shape: ``{"code", "message"}`` (+ ``request_id``)."""
    assert 400 <= status < 500, (status, body)
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str) and re.fullmatch(r"[a-z][a-z0-9_]*", body["code"]), (
        body
    )
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    if headers is not None and "request_id" in body:
        assert _REQUEST_ID.fullmatch(body["request_id"]), body
        assert headers.get("x-request-id") == body["request_id"], (body, dict(headers))


class RssSampler:
    """Samples a process tree's resident memory every ``interval`` s on a thread."""

    def __init__(self, pid: int, *, interval: float = 0.02, children: bool = False) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.children = children
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        if self.children:
            for child in self.proc.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.rss())
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)
