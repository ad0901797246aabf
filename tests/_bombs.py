"""Small files that cost a decoder a lot, generated with PyAV and zlib, and a peak-RSS meter.

* :func:`size_change_video`: an H.264 MPEG-TS stream that is 640x360 for 5 s
  (what a probe sees), then ``side`` x ``side`` (what the decoder then allocates).
* :func:`png_bomb`: a PNG of ``side`` x ``side`` RGBA64 zero pixels; the zeros
  compress ~1000:1, so 16000x16000 (2 GB decoded) is a ~2 MB file.
* :func:`many_streams_video`: a Matroska file with ``n`` tiny H.264 video
  streams; opening it makes FFmpeg set up a decoder per stream, memory the
  process keeps after the job (~1 MB per stream).
* :class:`SleepJob`: a worker job that holds its worker (a probe or embedding
  that takes its time), to fill a pool.
* :class:`PeakRSS`: the peak resident memory of a set of processes (psutil),
  sampled in a thread while a scenario runs.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil

MB = 1024 * 1024


def size_change_video(path: Path, side: int, *, small: tuple[int, int] = (640, 360)) -> Path:
    out = av.open(str(path), "w", format="mpegts")
    stream = out.add_stream("h264", rate=10)
    stream.width, stream.height = small
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "ultrafast"}
    for i in range(50):
        rgb = np.full((small[1], small[0], 3), (i * 20) % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    # A second encoder at the big size, muxed into the same stream: the new
    # sequence header arrives in-band, as a resolution switch does.
    big = av.CodecContext.create("h264", "w")
    big.width = big.height = side
    big.pix_fmt = "yuv420p"
    big.time_base = stream.codec_context.time_base
    big.framerate = 10
    big.options = {"preset": "ultrafast"}
    frame = av.VideoFrame(side, side, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.pts = 50
    for packet in [*big.encode(frame), *big.encode(None)]:
        packet.stream = stream
        out.mux(packet)
    out.close()
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int) -> Path:
    """``side`` x ``side`` RGBA, 16 bits per channel, all zero; streamed (little memory)."""
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    row = bytes(1 + side * 8)  # filter byte + pixels
    rows_per_chunk = max(1, (8 * MB) // len(row))
    parts = []
    for start in range(0, side, rows_per_chunk):
        parts.append(packer.compress(row * min(rows_per_chunk, side - start)))
    parts.append(packer.flush())
    body = b"".join(parts)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    )
    return path


def many_streams_video(path: Path, n: int, *, side: int = 64) -> Path:
    out = av.open(str(path), "w", format="matroska")
    streams = []
    for _ in range(n):
        stream = out.add_stream("h264", rate=5)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        streams.append(stream)
    for t in range(25):
        rgb = np.full((side, side, 3), t * 9, np.uint8)
        for stream in streams:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                out.mux(packet)
    for stream in streams:
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()
    return path


class SleepJob:
    """Holds the worker that runs it for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, send: Any) -> None:
        import time

        time.sleep(self.seconds)


class PeakRSS:
    """Peak resident memory (bytes) of the processes ``pids()`` names, sampled every 10 ms
    (``pids`` is called each time: workers come and go)."""

    def __init__(self, pids: Callable[[], Iterable[int | None]]) -> None:
        self._pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for pid in self._pids():
                if pid is None:
                    continue
                try:
                    self.peak = max(self.peak, psutil.Process(pid).memory_info().rss)
                except psutil.Error:
                    pass

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return round(self.peak / MB, 1)
