"""The engine's entry points: plain synchronous functions over paths (or bytes).

The server calls them inside worker processes; each one decodes its input once,
cuts it as the contract says and asks a :class:`~aioembed.engine.Backend` for the
vectors. Bad media raises :class:`~aioembed.engine.MediaError` with a contract
code; misuse (unknown model, option or scope) raises builtins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from .._params import DEFAULT_CLIP_LENGTH, MIN_LAST_CLIP, SCOPES, MediaLimits, clip_spans
from ..errors import ErrorCode
from ._backend import Backend
from ._catalogue import Model, OptionKind, catalogue_of
from ._decode import ClipMedia, decode_clips, decode_image, iter_clips
from ._media import (
    MediaError,
    MediaField,
    MediaInfo,
    MediaSource,
    container_info,
    media_duration,
    open_media,
)
from ._registry import get_backend

__all__ = ["SegmentVector", "embed_audio", "embed_image", "embed_text", "embed_video"]

#: Length of the segments ``embed_audio`` cuts (seconds), as the contract's sync embed does.
AUDIO_CLIP_LENGTH = 10.0


@attrs.frozen(eq=False)
class SegmentVector:
    """One vector and what it covers: ``[start, end)`` in seconds of the source,
    ``scope`` ``"clip"`` or ``"video"``, ``option`` such as ``"visual-text"`` or
    ``"audio"``; ``vector`` is float32, L2-normalised, shape ``(dims,)``."""

    start: float
    end: float
    scope: str
    option: str
    vector: npt.NDArray[np.float32] = attrs.field(repr=lambda v: f"<{v.shape[0]} float32>")


def _model(be: Backend, model_name: str) -> Model:
    """The backend's model ``model_name`` (:class:`KeyError` if it serves none such)."""
    return catalogue_of(be).get(model_name)


def _resolve(model: Model, options: Sequence[str] | None) -> tuple[Model, tuple[str, ...]]:
    if options is None:
        return model, model.options
    wanted = tuple(dict.fromkeys(options))
    for option in wanted:
        model.kind(option)  # ValueError for an option the model lacks
    if not wanted:
        raise ValueError("options should name at least one embedding option")
    # Model order, whatever order the caller used.
    return model, tuple(o for o in model.options if o in wanted)


def embed_video(
    path: MediaSource,
    *,
    model_name: str,
    start: float = 0.0,
    end: float | None = None,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    scopes: Sequence[str] = ("clip",),
    options: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    backend: str | None = None,
    limits: MediaLimits | None = None,
    threads: int | None = None,
) -> list[SegmentVector]:
    """Embed the part ``[start, end)`` (seconds) of a video file.

    Clips of ``clip_length`` s tile the range (a final remainder under 2 s is
    dropped); ``end=None`` means the media's duration and an ``end`` past it is
    clamped. ``scopes``: ``"clip"`` and/or ``"video"`` (the whole range, pooled
    from the clips). ``options``: the model's video options to compute (``None``:
    all). ``progress(clips_done, clips_total)`` is called after each clip.

    Returns, for each option in model order, its clip segments in time order, then
    its video segment. A video without audio gets the backend's silence vector for
    ``audio``. ``limits``: a picture size that changes mid-stream is checked
    against their resolution limits. ``threads`` caps the video decoder's
    threads (``None``: one per CPU).

    Raises :class:`MediaError` (``video_file_broken`` for a file that is not a
    decodable video; ``parameter_invalid`` if ``start`` is not before the end of
    the media; ``video_duration_too_short`` if the range holds no clip of 2 s;
    ``video_resolution_*`` for a size change out of ``limits``),
    :class:`KeyError` for an unknown model or backend and
    :class:`ValueError` for an option/scope the model lacks, a bad clip length or
    ``end <= start``.
    """
    be = get_backend(backend)
    model, opts = _resolve(_model(be, model_name), options)
    wanted_scopes = tuple(dict.fromkeys(scopes))
    if not wanted_scopes or any(s not in SCOPES for s in wanted_scopes):
        raise ValueError(f"scopes should be a non-empty selection of {SCOPES}, got {scopes!r}")
    if not clip_length > 0:
        raise ValueError(f"clip_length should be positive, got {clip_length!r}")
    if start < 0:
        raise ValueError(f"start should be 0 or greater, got {start!r}")
    if end is not None and end <= start:
        raise ValueError(f"end should be greater than start, got {start!r}..{end!r}")
    # One open for metadata and the decode pass; the pass itself proves decodability.
    with open_media(path) as container:
        info = container_info(container, decode_first=False)
        return _embed_container(
            container,
            info,
            model,
            be,
            opts,
            wanted_scopes,
            start=start,
            end=end,
            clip_length=clip_length,
            progress=progress,
            limits=limits,
            threads=threads,
        )


def _embed_container(
    container: Any,
    info: MediaInfo,
    model: Model,
    be: Backend,
    opts: tuple[str, ...],
    wanted_scopes: tuple[str, ...],
    *,
    start: float,
    end: float | None,
    clip_length: float,
    progress: Callable[[int, int], None] | None,
    limits: MediaLimits | None,
    threads: int | None,
) -> list[SegmentVector]:
    stop = info.duration if end is None else min(end, info.duration)
    if start >= stop:
        raise MediaError(
            ErrorCode.PARAMETER_INVALID,
            f"The start offset should be less than the video's duration ({info.duration:.2f} s).",
            MediaField.START_OFFSET,
        )
    spans = clip_spans(start, stop, clip_length)
    if not spans:
        raise MediaError(
            "video_duration_too_short",
            f"The part of the video to embed ({start:g}-{stop:g} s) is shorter than "
            f"{MIN_LAST_CLIP:g} seconds.",
        )
    kinds = {model.kind(o) for o in opts}
    clip_vectors: dict[str, list[npt.NDArray[np.float32]]] = {o: [] for o in opts}
    clips: Iterable[ClipMedia]
    if OptionKind.VISUAL in kinds or info.has_audio:
        # Without a visual option the pictures are not even decoded.
        clips = decode_clips(
            container,
            spans,
            video=OptionKind.VISUAL in kinds,
            audio=OptionKind.AUDIO in kinds,
            sample_fps=be.sample_fps,
            frame_size=be.frame_size,
            limits=limits,
            threads=threads,
        )
    else:
        # Sound only, and there is none: every clip is silence.
        clips = (_silent_clip(s, e, be.frame_size) for s, e in spans)
    for done, clip in enumerate(clips, start=1):
        for option in opts:
            if model.kind(option) == OptionKind.VISUAL:
                vec = be.visual(clip.frames, clip.times, model, option)
            else:
                vec = be.audio(clip.audio, model, option)
            clip_vectors[option].append(vec)
        if progress is not None:
            progress(done, len(spans))

    out: list[SegmentVector] = []
    weights = np.array([e - s for s, e in spans], np.float64)
    for option in opts:
        vectors = clip_vectors[option]
        if "clip" in wanted_scopes:
            out.extend(
                SegmentVector(s, e, "clip", option, v)
                for (s, e), v in zip(spans, vectors, strict=True)
            )
        if "video" in wanted_scopes:
            pooled = be.pool(np.stack(vectors), weights, model, option)
            # The contract's video segment covers the whole [start, end), a dropped
            # remainder under 2 s included.
            out.append(SegmentVector(start, round(stop, 6), "video", option, pooled))
    return out


def _silent_clip(start: float, end: float, size: tuple[int, int]) -> ClipMedia:
    return ClipMedia(
        start=start,
        end=end,
        frames=np.zeros((0, size[1], size[0], 3), np.uint8),
        times=np.zeros(0),
        audio=np.zeros(0, np.float32),
        has_audio=False,
    )


def _visual_option(model: Model) -> str:
    for option in model.options:
        if model.kind(option) == OptionKind.VISUAL:
            return option
    raise ValueError(f"model {model.name} has no visual option")


def embed_image(
    source: MediaSource,
    *,
    model_name: str,
    backend: str | None = None,
    max_pixels: int | None = None,
) -> npt.NDArray[np.float32]:
    """The vector of a PNG or JPEG image (a path or the file's bytes), in the same
    space as the model's visual video clips (image -> clip search works).

    Raises :class:`MediaError` ``parameter_invalid`` if it does not decode or has
    more than ``max_pixels`` pixels (checked from the header, before decoding).
    """
    be = get_backend(backend)
    model = _model(be, model_name)
    img = decode_image(source, be.frame_size, max_pixels=max_pixels)
    return be.visual(img[None], np.zeros(1), model, _visual_option(model))


def embed_text(
    text: str, *, model_name: str, backend: str | None = None
) -> npt.NDArray[np.float32]:
    """The vector of a text query.

    With the default weights-free backend this is a hashed n-gram embedding that
    is **not cross-modal**: compare it with other text vectors only. Raises
    :class:`ValueError` for an empty text.
    """
    if not text or not text.strip():
        raise ValueError("text should not be empty")
    be = get_backend(backend)
    return be.text(text, _model(be, model_name))


def _audio_duration(source: MediaSource) -> float:
    with open_media(source, what="audio") as container:
        if not container.streams.audio:
            raise MediaError(ErrorCode.PARAMETER_INVALID, "The audio file has no audio stream.")
        video = container.streams.video[0] if container.streams.video else None
        return media_duration(container, video, container.streams.audio[0])


def embed_audio(
    source: MediaSource,
    *,
    model_name: str,
    start_offset: float = 0.0,
    backend: str | None = None,
    max_duration: float | None = None,
) -> list[SegmentVector]:
    """Embed an audio file (or the audio of a video) from ``start_offset`` s on.

    Segments of 10 s (a final remainder under 2 s is dropped, unless it is all
    there is), option ``"audio"``, scope ``"clip"``, in the same space as video
    ``audio`` clips. Raises :class:`MediaError` ``parameter_invalid`` if the input
    has no decodable audio, declares more than ``max_duration`` seconds (checked
    before any segment is planned) or ``start_offset`` is not before its end.
    """
    if start_offset < 0:
        raise ValueError(f"start_offset should be 0 or greater, got {start_offset!r}")
    be = get_backend(backend)
    model = _model(be, model_name)
    model.kind("audio")
    try:
        duration = _audio_duration(source)
    except MediaError as exc:
        if exc.code == ErrorCode.PARAMETER_INVALID:
            raise
        raise MediaError(ErrorCode.PARAMETER_INVALID, exc.message) from None
    if max_duration is not None and round(duration, 3) > max_duration:
        raise MediaError(
            ErrorCode.PARAMETER_INVALID,
            f"The audio is too long ({duration:.0f} s). "
            f"The duration should be at most {max_duration:g} seconds.",
        )
    if start_offset >= duration:
        raise MediaError(
            ErrorCode.PARAMETER_INVALID,
            f"The start offset should be less than the audio's duration ({duration:.2f} s).",
            MediaField.START_OFFSET,
        )
    spans = clip_spans(start_offset, duration, AUDIO_CLIP_LENGTH) or [
        (round(start_offset, 6), round(duration, 6))
    ]
    out: list[SegmentVector] = []
    try:
        for clip in iter_clips(source, spans, video=False, audio=True, what="audio"):
            vec = be.audio(clip.audio, model, "audio")
            out.append(SegmentVector(clip.start, clip.end, "clip", "audio", vec))
    except MediaError as exc:
        if exc.code == ErrorCode.PARAMETER_INVALID:
            raise
        raise MediaError(ErrorCode.PARAMETER_INVALID, exc.message) from None
    return out
