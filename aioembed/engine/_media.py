"""Opening media safely, probing it cheaply and checking it against the contract's limits."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from enum import StrEnum

import attrs
import av

from .._params import MediaLimits
from ..errors import AioEmbedError, ErrorCode

__all__ = [
    "MediaError",
    "MediaField",
    "MediaInfo",
    "MediaLimits",
    "MediaSource",
    "check_media",
    "check_resolution",
    "container_info",
    "open_media",
    "probe",
]

#: A path, or the whole file as bytes.
MediaSource = str | os.PathLike[str] | bytes

# FFmpeg's probing is bounded so a hostile file cannot make open() crawl a huge input.
_OPEN_OPTIONS = {"probesize": str(5 * 1024 * 1024), "analyzeduration": str(10_000_000)}

BROKEN = ErrorCode.VIDEO_FILE_BROKEN


class MediaField(StrEnum):
    """Which of a call's inputs a :class:`MediaError` is about.

    The engine knows its own arguments, not a protocol's: a server maps these to
    its wire parameter names (``START_OFFSET`` of an audio input is
    ``audio_start_offset_sec`` on the wire).
    """

    #: The media itself (a video, image or audio file).
    MEDIA = "media"
    START_OFFSET = "start_offset"
    END_OFFSET = "end_offset"


class MediaError(AioEmbedError):
    """The media cannot be used; ``code`` is the contract's error code, ``field``
    the input it is about, ``message`` a sentence that names no protocol parameter.

    Codes: ``video_file_broken``, ``video_duration_too_short``,
    ``video_duration_too_long``, ``video_resolution_too_low``,
    ``video_resolution_too_high``, ``memory_limit_exceeded`` (and
    ``parameter_invalid`` for an offset past the end of the media, or an
    image/audio input that does not decode or breaks a limit). Picklable:
    ``args == (code, message)`` and ``field`` rides in the instance dict, so it
    crosses process boundaries unchanged.
    """

    def __init__(self, code: str, message: str, field: MediaField = MediaField.MEDIA) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.field = MediaField(field)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@attrs.frozen
class MediaInfo:
    """What :func:`probe` learns from a file's container (sizes are as displayed,
    i.e. after rotation metadata); ``duration`` in seconds, ``fps`` frames/s."""

    duration: float
    width: int
    height: int
    fps: float | None
    has_video: bool
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    rotation: int = 0


def _broken(detail: str, what: str = "video") -> MediaError:
    """``video_file_broken`` in the words of the input's kind (``what``: video, audio, image)."""
    return MediaError(BROKEN, f"The {what} file is broken or not a supported {what}: {detail}.")


@contextmanager
def open_media(source: MediaSource, *, what: str = "video") -> Iterator[Any]:
    """``av.open`` with bounded probing; any FFmpeg/OS failure becomes :class:`MediaError`.

    Only errors raised while *opening* are translated here; callers translate
    errors raised while decoding. ``what`` words the errors (video, audio, image).
    """
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise _broken("the file is empty", what)
            container = av.open(io.BytesIO(bytes(source)), options=dict(_OPEN_OPTIONS))
        else:
            path = os.fspath(source)
            if os.path.getsize(path) == 0:
                raise _broken("the file is empty", what)
            container = av.open(path, options=dict(_OPEN_OPTIONS))
    except MediaError:
        raise
    except FileNotFoundError:
        raise _broken("the file does not exist", what) from None
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _broken(f"FFmpeg cannot open it ({_short(exc)})", what) from None
    try:
        yield container
    finally:
        container.close()


def _short(exc: BaseException) -> str:
    # FFmpeg's and the OS's errors end with the file name: on a server that is an
    # internal path (the upload's temp file), not something to show a client.
    text = getattr(exc, "strerror", None) or str(exc).strip() or type(exc).__name__
    return str(text)[:160]


def _stream_duration(stream: Any) -> float | None:
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) and x > 0 else None


def media_duration(container: Any, video: Any, audio: Any) -> float:
    """Seconds: the container's duration, else the longest stream's, else 0."""
    candidates = [
        _finite(container.duration / 1_000_000 if container.duration else None),
        _finite(_stream_duration(video)),
        _finite(_stream_duration(audio)),
    ]
    found = [c for c in candidates if c is not None]
    return found[0] if found else 0.0


def _scan_duration(container: Any, video: Any) -> float:
    """Seconds up to the end of the last video packet, by demuxing (no decoding).

    Only for files whose container declares no duration (raw streams, some WebM);
    leaves the container rewound.
    """
    end = 0.0
    try:
        for packet in container.demux(video):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        container.seek(0)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _broken(f"it cannot be read to the end ({_short(exc)})") from None
    return end


def set_threads(stream: Any, threads: int | None) -> None:
    """Decode ``stream`` with at most ``threads`` threads (``None``: FFmpeg's choice, one
    per CPU). Decoder memory grows with the thread count (each thread holds frames)."""
    if threads is not None:
        stream.codec_context.thread_count = max(1, threads)


def container_info(
    container: Any, *, decode_first: bool = True, threads: int | None = None
) -> MediaInfo:
    """:class:`MediaInfo` of an open container (see :func:`probe`).

    Without ``decode_first`` it reads metadata only: sizes are the coded ones and
    rotation is not known (0); the caller must then be ready for a stream that
    does not decode. ``threads`` caps the decoder's threads (:func:`set_threads`).
    """
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None:
        raise _broken("it has no video stream")
    if decode_first:
        set_threads(video, threads)
    width, height = int(video.codec_context.width or 0), int(video.codec_context.height or 0)
    rotation = 0
    if decode_first:
        first = None
        try:
            for packet in container.demux(video):
                for frame in packet.decode():
                    first = frame
                    break
                if first is not None:
                    break
                if packet.pos is not None and packet.pos > 64 * 1024 * 1024:
                    break  # no frame in the first 64 MB: not a video we can use
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _broken(f"its video stream does not decode ({_short(exc)})") from None
        if first is None:
            raise _broken("its video stream has no decodable frame")
        width, height = first.width or width, first.height or height
        rotation = round(first.rotation or 0) % 360
        if rotation in (90, 270):
            width, height = height, width
    if width <= 0 or height <= 0:
        raise _broken("its video stream has no frame size")
    duration = media_duration(container, video, audio)
    if duration <= 0:
        if decode_first:
            container.seek(0)
        duration = _scan_duration(container, video)
    fps = video.average_rate or video.guessed_rate
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=float(fps) if fps else None,
        has_video=True,
        has_audio=audio is not None,
        video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else None,
        rotation=rotation,
    )


def probe(source: MediaSource, *, threads: int | None = None) -> MediaInfo:
    """Read duration, display size and streams from the container, decoding one frame.

    Decoding the first video frame proves the stream is decodable and yields the
    rotation metadata (``width``/``height`` are as displayed). Raises
    :class:`MediaError` ``video_file_broken`` for a missing, empty, truncated or
    non-media file, a file without a video stream (audio only) or an undecodable
    one. A file whose container declares no duration is demuxed (not decoded) to
    find it. ``threads`` caps the decoder's threads.
    """
    with open_media(source) as container:
        return container_info(container, decode_first=True, threads=threads)


def check_media(info: MediaInfo, limits: MediaLimits = MediaLimits()) -> None:
    """Raise :class:`MediaError` if ``info`` breaks ``limits`` (all inclusive).

    Order: decodability (no video stream), duration, then resolution.
    """
    if not info.has_video:
        raise _broken("it has no video stream")
    # Durations are compared at millisecond precision: containers round (a 4 s file
    # may report 3.9997 s), and "exactly 4 s is accepted" should hold for them.
    duration = round(info.duration, 3)
    if duration < limits.min_duration:
        raise MediaError(
            "video_duration_too_short",
            f"The video is too short ({info.duration:.2f} s). "
            f"The duration should be at least {limits.min_duration:g} seconds.",
        )
    if duration > limits.max_duration:
        raise MediaError(
            "video_duration_too_long",
            f"The video is too long ({info.duration:.0f} s). "
            f"The duration should be at most {limits.max_duration:g} seconds.",
        )
    check_resolution(info.width, info.height, limits)


def check_resolution(
    width: int, height: int, limits: MediaLimits, *, at: float | None = None
) -> None:
    """Raise ``video_resolution_too_low/high`` if ``width x height`` breaks ``limits``
    (orientation-free); ``at``: the time (s) of a mid-stream size change, for the message."""
    short, long = sorted((width, height))
    min_short, min_long = sorted((limits.min_width, limits.min_height))
    max_short, max_long = sorted((limits.max_width, limits.max_height))
    size = f"{width}x{height}" + ("" if at is None else f" (from {at:.2f} s on)")
    if short < min_short or long < min_long:
        raise MediaError(
            "video_resolution_too_low",
            f"The video resolution {size} is too low. "
            f"It should be at least {limits.min_width}x{limits.min_height}.",
        )
    if short > max_short or long > max_long:
        raise MediaError(
            "video_resolution_too_high",
            f"The video resolution {size} is too high. "
            f"It should be at most {limits.max_width}x{limits.max_height}.",
        )
