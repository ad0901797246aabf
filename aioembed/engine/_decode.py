"""One sequential decode pass per file, cut into clips as it goes.

Seeking for each sample would re-decode whole GOPs, so a file is demuxed and
decoded once from the start of the requested range (one seek at most). Every
video frame is decoded (the codec needs them) but only the few sampled frames are
colour-converted and scaled, which is where the cost would otherwise be. Audio is
decoded once and resampled to mono float32 at :data:`AUDIO_RATE`.

Memory is bounded by one clip: sampled frames are small and audio is cut and
dropped clip by clip, so a one-hour file needs no more than a six-second one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import av
import numpy as np
import numpy.typing as npt

from .._params import MediaLimits
from ..errors import ErrorCode
from ._imagesize import image_size
from ._media import MediaError, MediaSource, _broken, _short, check_resolution, open_media, set_threads

__all__ = ["AUDIO_RATE", "ClipMedia", "decode_clips", "decode_image", "iter_clips"]

AUDIO_RATE = 16_000
# A clip starting this long after the end of everything decoded: the file is cut short.
_TRUNCATION_SLACK = 1.0
# Audio this far ahead of the last video frame means the video stream has ended.
_STALL_SECONDS = 30.0
# Audio packets held back before they are decoded anyway (timestamps missing).
_MAX_PENDING_PACKETS = 1000
# Consecutive packets that fail to decode before the file is declared broken.
_MAX_BAD_PACKETS = 200
_DECODE_ERRORS = (av.FFmpegError, OSError, ValueError, MemoryError)


@attrs.frozen(eq=False)
class ClipMedia:
    """The decoded media of one clip ``[start, end)`` (seconds).

    ``frames``: sampled frames, ``(n, height, width, 3)`` uint8 RGB, upright.
    ``times``: their timestamps in seconds. ``audio``: mono float32 samples at
    :data:`AUDIO_RATE` covering the clip (shorter if the audio stops early, empty if
    there is none). ``has_audio``: the file has an audio stream at all.
    """

    start: float
    end: float
    frames: npt.NDArray[np.uint8]
    times: npt.NDArray[np.float64]
    audio: npt.NDArray[np.float32]
    has_audio: bool


def _upright(img: npt.NDArray[np.uint8], rotation: float | None) -> npt.NDArray[np.uint8]:
    # Display-matrix rotation is counter-clockwise degrees; np.rot90 turns the same way.
    k = round((rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def _sample(frame: Any, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    w, h = size
    rotation = frame.rotation
    if rotation and round(rotation / 90) % 2:
        w, h = h, w  # scale before turning, so the upright result is size
    img = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
    return _upright(img, rotation)


def _check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(
            ErrorCode.PARAMETER_INVALID,
            f"The image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"it should be at most {max_pixels / 1e6:g} megapixels.",
        )


def decode_image(
    source: MediaSource, size: tuple[int, int], *, max_pixels: int | None = None
) -> npt.NDArray[np.uint8]:
    """The first picture of ``source`` (PNG, JPEG or any video) as ``size`` RGB uint8.

    ``max_pixels`` is checked before decoding: from the header for PNG and JPEG
    (opening one with FFmpeg decodes it), from the container for the rest.
    Raises :class:`MediaError` ``parameter_invalid`` if it is too large or does
    not decode.
    """
    header = image_size(source)
    if header is not None:
        _check_pixels(*header, max_pixels)
    try:
        with open_media(source, what="image") as container:
            if not container.streams.video:
                raise MediaError(ErrorCode.PARAMETER_INVALID, "The image does not contain a picture.")
            codec = container.streams.video[0].codec_context
            _check_pixels(codec.width or 0, codec.height or 0, max_pixels)
            for frame in container.decode(video=0):
                return _sample(frame, size)
    except MediaError as exc:
        if exc.code == ErrorCode.PARAMETER_INVALID:
            raise
        raise MediaError(
            ErrorCode.PARAMETER_INVALID, "The image is broken or not a PNG or JPEG image."
        ) from None
    except _DECODE_ERRORS as exc:
        raise MediaError(
            ErrorCode.PARAMETER_INVALID, f"The image does not decode ({_short(exc)})."
        ) from None
    raise MediaError(ErrorCode.PARAMETER_INVALID, "The image does not contain a picture.")


def _mono(frame: Any) -> npt.NDArray[np.float32]:
    """A resampled mono ``flt`` frame's samples (copied: PyAV may reuse the buffer)."""
    return np.frombuffer(frame.planes[0], np.float32, count=frame.samples).copy()


class _AudioBuffer:
    """Resampled audio since the current clip's start, addressed by absolute sample index."""

    def __init__(self) -> None:
        self.chunks: list[npt.NDArray[np.float32]] = []
        self.first = 0  # absolute index of chunks[0][0]
        self.pos: int | None = None  # absolute index one past the last sample
        self.done = False

    def add(self, samples: npt.NDArray[np.float32], time: float | None) -> None:
        if self.pos is None:
            self.pos = self.first = round((time or 0.0) * AUDIO_RATE)
        if len(samples):
            self.chunks.append(samples)
            self.pos += len(samples)

    def end_time(self) -> float:
        """Seconds up to which audio arrived (-inf if none)."""
        return -math.inf if self.pos is None else self.pos / AUDIO_RATE

    def reached(self, t: float) -> bool:
        return self.done or (self.pos is not None and self.pos >= round(t * AUDIO_RATE))

    def cut(self, start: float, end: float) -> npt.NDArray[np.float32]:
        """Samples of ``[start, end)``; drops everything before ``end`` afterwards."""
        if self.pos is None or not self.chunks:
            return np.zeros(0, np.float32)
        data = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        a = max(round(start * AUDIO_RATE) - self.first, 0)
        b = max(round(end * AUDIO_RATE) - self.first, 0)
        out = np.array(data[a:b], dtype=np.float32)
        rest = data[b:]
        self.chunks = [rest] if len(rest) else []
        self.first += min(b, len(data))
        return out


def iter_clips(
    source: MediaSource,
    spans: Sequence[tuple[float, float]],
    *,
    video: bool = True,
    audio: bool = True,
    sample_fps: float = 4.0,
    frame_size: tuple[int, int] = (32, 32),
    what: str = "video",
) -> Iterator[ClipMedia]:
    """Decode ``source`` once and yield one :class:`ClipMedia` per span, in order.

    ``spans`` must be sorted and non-overlapping. Frames are sampled on a grid of
    ``sample_fps`` per second anchored at the first span's start (the first frame at
    or after each grid point, so variable frame rates work), scaled to
    ``frame_size`` (width, height). A clip with no frame of its own (the video
    stream stops early) repeats the last frame before it. Raises
    :class:`MediaError` ``video_file_broken`` when the file does not open, has no
    video stream (``video=True``) or does not decode, and ``parameter_invalid``
    when ``video=False`` and it has no audio stream. ``what`` names the input's
    kind in messages (``"audio"``: "The audio file is broken...").
    """
    with open_media(source, what=what) as container:
        yield from decode_clips(
            container,
            spans,
            video=video,
            audio=audio,
            sample_fps=sample_fps,
            frame_size=frame_size,
            what=what,
        )


def decode_clips(
    container: Any,
    spans: Sequence[tuple[float, float]],
    *,
    video: bool = True,
    audio: bool = True,
    sample_fps: float = 4.0,
    frame_size: tuple[int, int] = (32, 32),
    what: str = "video",
    limits: MediaLimits | None = None,
    threads: int | None = None,
) -> Iterator[ClipMedia]:
    """:func:`iter_clips` on an already open container (positioned at its start).

    ``limits``: every change of the picture size mid-stream is checked against
    them (``video_resolution_too_low/high``), not only the first frame's.
    ``threads`` caps the video decoder's threads.
    """
    if not spans:
        return
    range_start, range_end = spans[0][0], spans[-1][1]
    vstream = container.streams.video[0] if video and container.streams.video else None
    astream = container.streams.audio[0] if audio and container.streams.audio else None
    if video and vstream is None:
        raise _broken("it has no video stream", what)
    if not video and astream is None:
        raise MediaError(ErrorCode.PARAMETER_INVALID, "The audio file has no audio stream.")
    streams = [s for s in (vstream, astream) if s is not None]
    if vstream is not None:
        vstream.thread_type = "AUTO"
        set_threads(vstream, threads)
    if range_start > 1.0:
        try:
            # One seek to the keyframe before the range (backward), then decode on.
            container.seek(int((range_start - 0.5) * 1_000_000), backward=True)
        except _DECODE_ERRORS:
            pass  # unseekable: decode from the beginning instead
    yield from _clip_pass(
        container,
        streams,
        vstream,
        astream,
        spans,
        sample_fps=sample_fps,
        frame_size=frame_size,
        range_end=range_end,
        what=what,
        limits=limits,
    )


class _PacketFailures:
    """Consecutive packets (of either stream) that failed to decode.

    A few bad packets are normal in a damaged file and are skipped; a long run
    of them means the file is broken, which is reported rather than decoded on.
    A failed allocation is never skipped (``MemoryError`` propagates).
    """

    def __init__(self, what: str) -> None:
        self.count = 0
        self.what = what

    def decode(self, packet: Any) -> list[Any]:
        """The packet's frames, or none if it fails to decode."""
        try:
            frames: list[Any] = packet.decode()
        except MemoryError:
            # Not a damaged packet: the process is out of memory (a worker's cap). Going
            # on would drop frames silently; the caller reports it.
            raise
        except _DECODE_ERRORS:
            self.count += 1
            if self.count > _MAX_BAD_PACKETS:
                raise _broken("too many packets fail to decode", self.what) from None
            return []
        self.count = 0
        return frames


class _VideoTrack:
    """The video side of a pass: how far the stream got and the frames sampled so far.

    Frames before the range (after the seek) are decoded but never converted; a
    clip with no frame of its own falls back to the last sampled frame.
    """

    def __init__(
        self,
        stream: Any,
        *,
        range_start: float,
        range_end: float,
        sample_fps: float,
        frame_size: tuple[int, int],
        limits: MediaLimits | None,
    ) -> None:
        self.stream = stream
        self.limits = limits
        self.size = (0, 0)  # of the last decoded frame
        self.range_start, self.range_end = range_start, range_end
        self.sample_fps, self.frame_size = sample_fps, frame_size
        self.step = 1.0 / sample_fps
        self.frames: list[tuple[float, npt.NDArray[np.uint8]]] = []  # sampled, not yet emitted
        self.last_frame: tuple[float, npt.NDArray[np.uint8]] | None = None
        self.next_sample = range_start
        self.t = -math.inf if stream is not None else math.inf  # newest frame time
        self.done = stream is None
        self.decoded_any = False
        rate = stream.average_rate if stream is not None else None
        self.frame_period = 1.0 / float(rate) if rate else 1 / 25
        self.base = float(stream.time_base) if stream is not None and stream.time_base else 0.0

    def add(self, frame: Any) -> None:
        """Account for one decoded frame; sample it if it falls on the grid."""
        pts = frame.pts
        if pts is None:
            t = (self.t if math.isfinite(self.t) else self.range_start) + self.frame_period
        else:
            t = pts * self.base  # a float product: Fraction arithmetic per frame is slow
        size = (frame.width, frame.height)
        if size != self.size:
            # A stream may change size anywhere (a new sequence header): a small first
            # picture proves nothing about the next one.
            self.size = size
            if self.limits is not None:
                check_resolution(*size, self.limits, at=t)
        self.decoded_any = True
        self.t = max(self.t, t)
        if t >= self.next_sample - 1e-3 and t < self.range_end:
            self.frames.append((t, _sample(frame, self.frame_size)))
            n = math.floor((t - self.range_start) * self.sample_fps + 1e-6) + 1
            self.next_sample = self.range_start + n * self.step

    def reached(self, t: float) -> bool:
        return self.done or self.t >= t - 1e-6

    def take(self, start: float, end: float) -> list[tuple[float, npt.NDArray[np.uint8]]]:
        """The sampled frames of ``[start, end)`` (dropped from the track), or the last
        picture before them when the stream has none there."""
        mine = [f for f in self.frames if start - 1e-3 <= f[0] < end]
        self.frames = [f for f in self.frames if f[0] >= end]
        if mine:
            self.last_frame = mine[-1]
        elif self.stream is not None:
            if self.last_frame is None:
                raise _broken(f"its video stream has no picture before {end:g} s")
            # The picture stream stopped while the sound goes on (a still cover
            # frame, or a shorter video track): hold the last picture.
            mine = [self.last_frame]
        return mine


class _AudioTrack:
    """The audio side of a pass: packets held back, then decoded and resampled in batches.

    Audio packets are kept (compressed, small) and decoded in a batch when a clip
    needs them: decoding and resampling audio interleaved with video frames runs
    with cold caches and costs about twice as much.
    """

    def __init__(self, stream: Any, failures: _PacketFailures) -> None:
        self.stream = stream
        self.failures = failures
        self.buf = _AudioBuffer()
        self.buf.done = stream is None
        self.resampler = (
            av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
            if stream is not None
            else None
        )
        self.pending: list[Any] = []
        self.packets_end = -math.inf  # seconds of audio demuxed so far, from packet timestamps
        self.base = float(stream.time_base) if stream is not None and stream.time_base else 0.0

    def owns(self, packet: Any) -> bool:
        return self.stream is not None and packet.stream.index == self.stream.index

    def add(self, packet: Any) -> None:
        self.pending.append(packet)
        if packet.pts is not None:
            end = (packet.pts + (packet.duration or 0)) * self.base
            self.packets_end = max(self.packets_end, end)

    def decode_pending(self) -> None:
        assert self.resampler is not None
        for packet in self.pending:
            for frame in self.failures.decode(packet):
                # Only the first frame's time anchors the audio (and .time is not free).
                time = frame.time if self.buf.pos is None else None
                for out in self.resampler.resample(frame):
                    self.buf.add(_mono(out), time)
                    time = None
        self.pending.clear()

    def reached(self, t: float) -> bool:
        if self.buf.reached(t):
            return True
        # The resampler holds back a few samples: ask for a little more than t.
        if self.pending and (
            self.packets_end >= t + 0.2 or len(self.pending) > _MAX_PENDING_PACKETS
        ):
            self.decode_pending()
            return self.buf.reached(t)
        return False

    def time(self) -> float:
        """Seconds of audio seen so far (decoded or only demuxed)."""
        return max(self.buf.end_time(), self.packets_end)

    def flush(self) -> None:
        """End of input: decode what is pending and drain the resampler."""
        if self.resampler is not None:
            self.decode_pending()
            try:
                for out in self.resampler.resample(None):
                    self.buf.add(_mono(out), None)
            except _DECODE_ERRORS:
                pass

    def cut(self, start: float, end: float) -> npt.NDArray[np.float32]:
        if self.stream is None:
            return np.zeros(0, np.float32)
        return self.buf.cut(start, end)


class _ClipPass:
    """The state of one decode pass, with its transitions: :meth:`feed` a packet,
    take the :meth:`ready` clips, :meth:`finish` at the end of the input."""

    def __init__(
        self,
        vstream: Any,
        astream: Any,
        spans: Sequence[tuple[float, float]],
        *,
        sample_fps: float,
        frame_size: tuple[int, int],
        range_end: float,
        what: str,
        limits: MediaLimits | None = None,
    ) -> None:
        self.spans = spans
        self.index = 0  # the next span to emit
        self.frame_size = frame_size
        self.what = what
        self.failures = _PacketFailures(what)
        self.video = _VideoTrack(
            vstream,
            range_start=spans[0][0],
            range_end=range_end,
            sample_fps=sample_fps,
            frame_size=frame_size,
            limits=limits,
        )
        self.audio = _AudioTrack(astream, self.failures)

    @property
    def complete(self) -> bool:
        return self.index >= len(self.spans)

    def feed(self, packet: Any) -> None:
        """One demuxed packet: audio is held back, video decoded at once."""
        if self.audio.owns(packet):
            self.audio.add(packet)
            return
        for frame in self.failures.decode(packet):
            self.video.add(frame)

    def ready(self) -> Iterator[ClipMedia]:
        """The clips whose pictures and sound have all arrived, in order."""
        while not self.complete and self._can_emit(self.spans[self.index][1]):
            yield self._emit()

    def finish(self) -> Iterator[ClipMedia]:
        """End of the file (or of the range): everything left, now."""
        if not self.complete:
            self.audio.flush()
        self.video.done = True
        self.audio.buf.done = True
        if self.video.stream is not None and not self.video.decoded_any:
            raise _broken("its video stream has no decodable frame")
        while not self.complete:
            yield self._emit()

    def _can_emit(self, end: float) -> bool:
        # Audio far ahead of the video means the video stream has ended before the
        # audio (muxers interleave within a second or so): do not hold the rest of
        # the file waiting for frames that will not come.
        video_t = self.video.t
        stalled = math.isfinite(video_t) and self.audio.time() - video_t > _STALL_SECONDS
        if not (self.video.reached(end) or stalled):
            return False
        return self.audio.reached(end)

    def _emit(self) -> ClipMedia:
        start, end = self.spans[self.index]
        self.index += 1
        if self.video.done and self.audio.buf.done:
            self._check_truncation(start)
        mine = self.video.take(start, end)
        w, h = self.frame_size
        return ClipMedia(
            start=start,
            end=end,
            frames=np.stack([f[1] for f in mine]) if mine else np.zeros((0, h, w, 3), np.uint8),
            times=np.array([f[0] for f in mine], np.float64),
            audio=self.audio.cut(start, end),
            has_audio=self.audio.stream is not None,
        )

    def _check_truncation(self, start: float) -> None:
        # End of file: a clip starting well after the last decoded picture and
        # sound means the file is cut short (the container promised more).
        video_end = self.video.t if self.video.stream is not None else -math.inf
        media_end = max(video_end, self.audio.buf.end_time())
        if start - media_end > _TRUNCATION_SLACK:
            raise _broken(
                f"its streams stop at {max(media_end, 0):.2f} s, before the clip "
                f"at {start:g} s (truncated?)",
                self.what,
            )


def _clip_pass(
    container: Any,
    streams: list[Any],
    vstream: Any,
    astream: Any,
    spans: Sequence[tuple[float, float]],
    *,
    sample_fps: float,
    frame_size: tuple[int, int],
    range_end: float,
    what: str,
    limits: MediaLimits | None,
) -> Iterator[ClipMedia]:
    """Demux once, feeding :class:`_ClipPass` and yielding clips as they complete."""
    state = _ClipPass(
        vstream,
        astream,
        spans,
        sample_fps=sample_fps,
        frame_size=frame_size,
        range_end=range_end,
        what=what,
        limits=limits,
    )
    packets = container.demux(*streams)
    while not state.complete:
        try:
            packet = next(packets, None)
        except _DECODE_ERRORS as exc:
            raise _broken(f"demuxing failed ({_short(exc)})", what) from None
        if packet is None:
            break
        state.feed(packet)
        yield from state.ready()
    yield from state.finish()
