"""Embed API v2 in the engine: one call per request, plain values in and out.

The server's v2 adapter parses and validates the wire request (``_params``-style,
shared with the SDK), then calls, inside a worker process::

    from aioembed.engine import V2Request, Fixed, Dynamic, embed_v2, embed_text_v2, fuse

    result = embed_v2(path_or_bytes, V2Request(
        model="marengo3.5", input_kind="video",          # "video" | "audio" | "image"
        start_sec=0.0, end_sec=None,                     # None: to the end of the media
        segmentation=Dynamic(min_duration_sec=2),        # or Fixed(duration_sec=6); None: model default
        options=("visual", "audio"),                     # None: the model's default for the kind
        scopes=("clip", "asset"), types=("separate_embedding", "fused_embedding"),
        dimension=256, uncertainty=False,                # dimension: 3.5 only (None: 512)
        metadata=(MetadataEntry(3.0, 3.0, "goal"),),     # time_based_metadata (3.5)
    ))
    result.segments   # tuple[V2Segment]: option, scope, start, end, vector (float32), uncertainty
    result.media      # MediaMetadata: duration, start/end offsets, size, streams; None for images
    probe_v2(path, "audio")          # MediaMetadata before a task: duration, size (cheap)
    result.usage      # Usage: input_tokens {"video": seconds, ...}, truncated

    vec, usage = embed_text_v2("a red car", model="marengo3.0")   # text input
    fuse([v1, v2, ...])              # text_image / multi_input: L2-normalise(sum)
    media_vector(path, "video", model="marengo3.0")   # a multi_input source's vector

Segments come in the contract's order: clip items by ``start``, within a segment
the options in request order then ``fused``; asset items last (same inner order).
Image items have scope ``asset`` and no times. Every vector has ``dimension``
values (512 by default); on ``marengo3.5`` it is the prefix of the 512-value
vector, not renormalised.

One decode pass per call: pictures are sampled (the backend's ``sample_fps``)
and sound decoded in half-second ticks; shot or audio-change boundaries are
found online, and a segment's frames and samples are dropped once its vectors
exist, so memory stays flat in the media's length (see
:mod:`aioembed.engine._segments` for the one bound: a shot with no cut for
two minutes is closed there). Subtitles are read by demuxing their stream alone.

Errors: :class:`~aioembed.engine.MediaError` for bad media (``video_file_broken``
for a file that does not decode; ``parameter_invalid`` for a range outside the
media, an audio input without sound or an image that does not decode);
:class:`ValueError`/:class:`KeyError` for misuse (an option, type or dimension
the model or input kind does not take) - the wire layer rejects those first.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ..errors import ErrorCode
from ._backend import Backend, get_backend, normalise
from ._decode import decode_clips, decode_image
from ._media import MediaError, MediaSource, _broken, container_info, media_duration, open_media
from ._segments import DynamicCutter, fixed_spans
from ._shots import AudioChangeDetector, ShotDetector
from ._subtitles import Cue, cue_text, read_cues
from ._v2models import DIMS, InputKind, Option, V2Model, get_v2_model, nest, v2_text

__all__ = [
    "Dynamic",
    "EmbeddingType",
    "Fixed",
    "MediaMetadata",
    "MetadataEntry",
    "Scope",
    "Usage",
    "V2Request",
    "V2Result",
    "V2Segment",
    "count_tokens",
    "embed_text_v2",
    "embed_v2",
    "fuse",
    "media_vector",
    "probe_v2",
]

Vector = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Length of the decode ticks (seconds): how often detectors and segments advance.
TICK = 0.5
#: Window over which audio uncertainty is measured (seconds).
UNCERTAINTY_WINDOW = 1.0


class Scope(enum.StrEnum):
    CLIP = "clip"
    ASSET = "asset"


class EmbeddingType(enum.StrEnum):
    SEPARATE = "separate_embedding"
    FUSED = "fused_embedding"


@attrs.frozen
class Fixed:
    """Segments of ``duration_sec`` seconds."""

    duration_sec: float


@attrs.frozen
class Dynamic:
    """Shot (video) or audio-change (audio) boundaries, at least ``min_duration_sec`` apart."""

    min_duration_sec: float


@attrs.frozen
class MetadataEntry:
    """A ``time_based_metadata`` entry: ``text`` about ``[start, end]`` seconds."""

    start: float
    end: float
    text: str


# A repeated value counts once, as the contract says.


def _options(values: Iterable[str] | None) -> tuple[Option, ...] | None:
    return None if values is None else tuple(dict.fromkeys(Option(v) for v in values))


def _scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    return tuple(dict.fromkeys(Scope(v) for v in values))


def _types(values: Iterable[str]) -> tuple[EmbeddingType, ...]:
    return tuple(dict.fromkeys(EmbeddingType(v) for v in values))


@attrs.frozen
class V2Request:
    """What to embed (see the module docstring); enum fields also take their strings."""

    model: str
    input_kind: InputKind = attrs.field(converter=InputKind)
    start_sec: float = attrs.field(default=0.0, converter=float)
    end_sec: float | None = attrs.field(default=None, converter=attrs.converters.optional(float))
    segmentation: Fixed | Dynamic | None = None
    options: tuple[Option, ...] | None = attrs.field(default=None, converter=_options)
    scopes: tuple[Scope, ...] = attrs.field(default=(Scope.CLIP, Scope.ASSET), converter=_scopes)
    types: tuple[EmbeddingType, ...] = attrs.field(
        default=(EmbeddingType.SEPARATE,), converter=_types
    )
    dimension: int | None = None
    uncertainty: bool = False
    metadata: tuple[MetadataEntry, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen(eq=False)
class V2Segment:
    """One result item: ``option`` (``visual``/``audio``/``transcription``/``fused``),
    ``scope``, ``[start, end)`` seconds (``None`` for images), ``vector`` float32 of
    the request's dimension, ``uncertainty`` (same shape, >= 0) when asked for."""

    option: Option
    scope: Scope
    start: float | None
    end: float | None
    vector: Vector = attrs.field(repr=lambda v: f"<{v.shape[0]} float32>")
    uncertainty: Vector | None = attrs.field(
        default=None, repr=lambda v: "None" if v is None else f"<{v.shape[0]} float32>"
    )


@attrs.frozen
class MediaMetadata:
    """The media as the engine saw it: ``duration`` (s), the processed range, size."""

    duration: float
    start_offset_sec: float
    end_offset_sec: float
    width: int | None = None
    height: int | None = None
    has_audio: bool = False
    has_subtitles: bool = False


@attrs.frozen
class Usage:
    """The engine's own counts: ``text`` tokens (:func:`count_tokens`), ``image`` 256 per
    picture (16x16 patches), ``video``/``audio`` seconds processed (rounded up)."""

    input_tokens: dict[str, int]
    truncated: bool = False


@attrs.frozen
class V2Result:
    segments: tuple[V2Segment, ...]
    media: MediaMetadata | None
    usage: Usage


# --------------------------------------------------------------------------- helpers

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
IMAGE_TOKENS = 256


def count_tokens(text: str) -> int:
    """Tokens of ``text`` by the engine's tokenizer (words and punctuation marks)."""
    return sum(1 for _ in _TOKEN.finditer(text))


def fuse(vectors: Iterable[npt.NDArray[np.floating[Any]]]) -> Vector:
    """``L2-normalise(sum of vectors)``: fused items, ``text_image`` and ``multi_input``.

    Raises :class:`ValueError` for no vectors.
    """
    rows = [np.asarray(v, np.float64) for v in vectors]
    if not rows:
        raise ValueError("fuse needs at least one vector")
    acc = np.zeros(rows[0].shape[0], np.float64)
    for row in rows:  # a fixed summation order: bit-identical results
        acc += row
    return normalise(acc)


def _cut(vector: Vector, dimension: int) -> Vector:
    return np.ascontiguousarray(vector[:dimension], np.float32)


def _spread(vectors: Sequence[Vector]) -> Vector:
    """Per-dimension standard deviation over ``vectors`` (zeros for one)."""
    if len(vectors) < 2:
        return np.zeros(DIMS, np.float32)
    out: Vector = np.std(np.stack(vectors).astype(np.float64), axis=0).astype(np.float32)
    return out


def _check(request: V2Request, model: V2Model) -> tuple[Option, ...]:
    allowed = model.options[request.input_kind]
    options = request.options if request.options is not None else allowed
    if not options or any(o not in allowed for o in options):
        raise ValueError(
            f"{model.name} {request.input_kind} options are {', '.join(allowed)}, got {options}"
        )
    if not request.scopes or not request.types:
        raise ValueError("scopes and types should not be empty")
    if request.dimension is not None:
        if not model.nested:
            raise ValueError(f"{model.name} has no embedding_dimension")
        if not 1 <= request.dimension <= DIMS:
            raise ValueError(f"dimension should be within 1-{DIMS}, got {request.dimension}")
    if request.metadata and not model.nested:
        raise ValueError(f"{model.name} takes no time_based_metadata")
    if request.start_sec < 0 or (
        request.end_sec is not None and request.end_sec <= request.start_sec
    ):
        raise ValueError(f"bad range {request.start_sec}..{request.end_sec}")
    return tuple(options)


# --------------------------------------------------------------------------- entry points


def embed_text_v2(
    text: str,
    *,
    model: str,
    dimension: int | None = None,
    truncate_at: int | None = None,
    backend: str | None = None,
) -> tuple[Vector, Usage]:
    """The vector of a text input (hashed n-grams: comparable with text vectors only)
    and its usage.

    ``truncate_at``: embed only the first that many tokens (``auto_truncate``;
    ``usage.truncated`` says whether it cut). Refusing an over-long text is the
    wire layer's (:func:`count_tokens`). Raises :class:`ValueError` for an empty text.
    """
    if not text.strip():
        raise ValueError("text should not be empty")
    spec = get_v2_model(model)
    tokens = list(_TOKEN.finditer(text))
    truncated = False
    if truncate_at is not None and len(tokens) > truncate_at:
        if truncate_at < 1:
            raise ValueError(f"truncate_at should be 1 or more, got {truncate_at}")
        text, tokens, truncated = text[: tokens[truncate_at - 1].end()], tokens[:truncate_at], True
    vec = v2_text(get_backend(backend), text, spec)
    return _cut(vec, dimension or DIMS), Usage({"text": len(tokens)}, truncated)


def media_vector(
    source: MediaSource, kind: str, *, model: str, backend: str | None = None
) -> Vector:
    """One 512-value vector for a ``multi_input`` source: an image's visual vector, an
    audio's asset audio vector, a video's asset vectors (its default options) fused."""
    request = V2Request(model=model, input_kind=kind, scopes=(Scope.ASSET,))
    items = embed_v2(source, request, backend=backend).segments
    return items[0].vector if len(items) == 1 else fuse(s.vector for s in items)


def embed_v2(source: MediaSource, request: V2Request, *, backend: str | None = None) -> V2Result:
    """Embed a video, audio or image input as ``request`` says (see the module docstring)."""
    spec = get_v2_model(request.model)
    options = _check(request, spec)
    be = get_backend(backend)
    if request.input_kind is InputKind.IMAGE:
        return _embed_image(source, request, spec, be)
    return _MediaPass(source, request, spec, options, be).run()


def _embed_image(source: MediaSource, request: V2Request, spec: V2Model, be: Backend) -> V2Result:
    img = decode_image(source, be.frame_size)
    raw = be.visual(img[None], np.zeros(1), spec.backend_model, Option.VISUAL.value)
    vec = nest(raw, spec, Option.VISUAL)
    dim = request.dimension or DIMS
    unc = np.zeros(dim, np.float32) if request.uncertainty else None
    item = V2Segment(Option.VISUAL, Scope.ASSET, None, None, _cut(vec, dim), unc)
    return V2Result((item,), None, Usage({"image": IMAGE_TOKENS}))


def probe_v2(source: MediaSource, kind: str) -> MediaMetadata:
    """Duration, size and streams of a video or audio input, checked cheaply (a video's
    first frame is decoded), for media checks at create time.

    Raises :class:`MediaError` ``video_file_broken`` (a video that does not open or
    decode) or ``parameter_invalid`` (an audio input without sound).
    """
    with open_media(source) as container:
        return _describe(container, InputKind(kind), decode_first=True)


def _describe(container: Any, kind: InputKind, *, decode_first: bool) -> MediaMetadata:
    if kind is InputKind.VIDEO:
        info = container_info(container, decode_first=decode_first)
        return MediaMetadata(
            info.duration, 0.0, info.duration, info.width, info.height, info.has_audio
        )
    if not container.streams.audio:
        raise MediaError(ErrorCode.PARAMETER_INVALID, "The audio file has no audio stream.")
    video = container.streams.video[0] if container.streams.video else None
    duration = media_duration(container, video, container.streams.audio[0])
    return MediaMetadata(duration, 0.0, duration, has_audio=True)


# --------------------------------------------------------------------------- the pass


@attrs.define
class _Span:
    """A finished segment's vectors (512 values) and their spreads, per option."""

    start: float
    end: float
    vectors: dict[Option, Vector]
    spreads: dict[Option, Vector]


class _MediaPass:
    """One decode pass over a video or audio input, segment by segment."""

    def __init__(
        self,
        source: MediaSource,
        request: V2Request,
        spec: V2Model,
        options: tuple[Option, ...],
        be: Backend,
    ) -> None:
        self.source = source
        self.request = request
        self.spec = spec
        self.options = options
        self.be = be
        self.model = spec.backend_model
        self.video = request.input_kind is InputKind.VIDEO
        self.frames: list[tuple[float, npt.NDArray[np.uint8]]] = []
        self.last_frame: tuple[float, npt.NDArray[np.uint8]] | None = None
        self.audio: list[npt.NDArray[np.float32]] = []
        self.audio_start = 0  # absolute sample index of self.audio[0][0]
        self.cues: list[Cue] = []
        self.done: list[_Span] = []

    def run(self) -> V2Result:
        has_subs = False
        if Option.TRANSCRIPTION in self.options:
            cues = read_cues(self.source)
            has_subs = cues is not None
            self.cues = cues or []
        with open_media(self.source) as container:
            media, start, stop = self._range(container)
            media = attrs.evolve(media, has_subtitles=has_subs)
            for span in self._segments(container, start, stop):
                self.done.append(self._embed(*span))
        kind = "video" if self.video else "audio"
        usage = Usage({kind: math.ceil(stop - start - 1e-9)})
        return V2Result(tuple(self._items(start, stop)), media, usage)

    # ---- range and decoding

    def _range(self, container: Any) -> tuple[MediaMetadata, float, float]:
        described = _describe(container, self.request.input_kind, decode_first=False)
        duration = described.duration
        start = self.request.start_sec
        stop = duration if self.request.end_sec is None else min(self.request.end_sec, duration)
        if start >= stop:
            raise MediaError(
                ErrorCode.PARAMETER_INVALID,
                f"The start_sec parameter is invalid. start_sec should be less than the "
                f"media's duration ({duration:.2f} s).",
            )
        stop = round(stop, 6)
        return attrs.evolve(described, start_offset_sec=start, end_offset_sec=stop), start, stop

    def _segments(self, container: Any, start: float, stop: float) -> Iterator[tuple[float, float]]:
        seg = self.request.segmentation
        if seg is None:
            how, value = self.spec.default_segmentation[self.request.input_kind]
            seg = Fixed(value) if how == "fixed" else Dynamic(value)
        need_video = self.video and (Option.VISUAL in self.options or isinstance(seg, Dynamic))
        need_audio = Option.AUDIO in self.options or not self.video
        if not (need_video or need_audio) or (not need_video and not container.streams.audio):
            # Nothing to decode (transcription alone, or sound from a silent file).
            yield from self._plan(seg, start, stop, ())
            return
        n = max(1, math.ceil((stop - start) / TICK - 1e-9))
        ticks = [(start + i * TICK, min(start + (i + 1) * TICK, stop)) for i in range(n)]
        clips = decode_clips(
            container,
            ticks,
            video=need_video,
            audio=need_audio,
            sample_fps=self.be.sample_fps,
            frame_size=self.be.frame_size,
        )
        yield from self._plan(seg, start, stop, clips)

    def _plan(
        self, seg: Fixed | Dynamic, start: float, stop: float, clips: Iterable[Any]
    ) -> Iterator[tuple[float, float]]:
        """Spans in order as the decode pass makes them final, buffering media."""
        if isinstance(seg, Fixed):
            pending = fixed_spans(start, stop, seg.duration_sec)
            for clip in clips:
                self._buffer(clip)
                while pending and pending[0][1] <= clip.end + 1e-9:
                    yield pending.pop(0)
            yield from pending
            return
        cutter = DynamicCutter(start, stop, seg.min_duration_sec)
        shots, sounds = ShotDetector(), AudioChangeDetector(start)
        for clip in clips:
            # Pictures cut a video, sound an audio input.
            found = self._buffer(
                clip, shots if self.video else None, None if self.video else sounds
            )
            for b in found:
                yield from cutter.boundary(b.time)
            yield from cutter.advance(shots.horizon if self.video else sounds.horizon)
        for b in shots.finish() if self.video else sounds.finish():
            yield from cutter.boundary(b.time)
        yield from cutter.finish()

    def _buffer(
        self,
        clip: Any,
        shots: ShotDetector | None = None,
        sounds: AudioChangeDetector | None = None,
    ) -> list[Any]:
        found: list[Any] = []
        newest = self.frames[-1][0] if self.frames else -math.inf
        if self.last_frame is not None:
            newest = max(newest, self.last_frame[0])
        for t, frame in zip(clip.times, clip.frames, strict=True):
            if t > newest:  # a tick without a frame of its own repeats the last one
                self.frames.append((float(t), frame))
                newest = float(t)
                if shots is not None:
                    found += shots.push(float(t), frame)
        if len(clip.audio):
            if not self.audio:
                self.audio_start = round(clip.start * 16_000)
            self.audio.append(clip.audio)
            if sounds is not None:
                found += sounds.push(clip.audio)
        return found

    # ---- vectors

    def _samples(self, start: float, end: float) -> npt.NDArray[np.float32]:
        if not self.audio:
            return np.zeros(0, np.float32)
        data = np.concatenate(self.audio) if len(self.audio) > 1 else self.audio[0]
        a = max(round(start * 16_000) - self.audio_start, 0)
        b = max(round(end * 16_000) - self.audio_start, 0)
        out = np.array(data[a:b], np.float32)
        rest = data[b:]
        self.audio = [rest] if len(rest) else []
        self.audio_start += min(b, len(data))
        return out

    def _take_frames(self, start: float, end: float) -> list[tuple[float, npt.NDArray[np.uint8]]]:
        mine = [f for f in self.frames if start - 1e-3 <= f[0] < end]
        before = [f for f in self.frames if f[0] < end]
        if before:
            self.last_frame = before[-1]
        self.frames = [f for f in self.frames if f[0] >= end]
        if not mine and self.last_frame is not None:
            # The pictures stopped before the sound: hold the last one (as v1 does).
            mine = [self.last_frame]
        return mine

    def _embed(self, start: float, end: float) -> _Span:
        """The raw (un-nested) option vectors of ``[start, end)`` and their nested spreads."""
        frames = self._take_frames(start, end)
        samples = self._samples(start, end)
        vectors: dict[Option, Vector] = {}
        spreads: dict[Option, Vector] = {}
        want_spread = self.request.uncertainty
        for option in self.options:
            if option is Option.VISUAL:
                vectors[option], per = self._visual(frames, want_spread)
            elif option is Option.AUDIO:
                vectors[option], per = self._audio(samples, want_spread)
            else:
                cues = [
                    c for c in self.cues if c.start < end and (c.end > start or c.start >= start)
                ]
                if not cues:
                    continue  # no words in this segment: no transcription item
                vectors[option] = v2_text(self.be, cue_text(cues, start, end), self.spec)
                per = [v2_text(self.be, c.text, self.spec) for c in cues] if want_spread else []
            if want_spread:
                spreads[option] = _spread(
                    per
                    if option is Option.TRANSCRIPTION
                    else [nest(v, self.spec, option) for v in per]
                )
        return _Span(start, end, vectors, spreads)

    def _visual(
        self, frames: list[tuple[float, npt.NDArray[np.uint8]]], per_frame: bool
    ) -> tuple[Vector, list[Vector]]:
        if not frames:
            raise _broken("its video stream has no picture in the range")
        arr = np.stack([f for _, f in frames])
        times = np.array([t for t, _ in frames], np.float64)
        vec = self.be.visual(arr, times, self.model, Option.VISUAL.value)
        per = (
            [
                self.be.visual(arr[i : i + 1], times[i : i + 1], self.model, Option.VISUAL.value)
                for i in range(len(frames))
            ]
            if per_frame
            else []
        )
        return vec, per

    def _audio(
        self, samples: npt.NDArray[np.float32], per_window: bool
    ) -> tuple[Vector, list[Vector]]:
        vec = self.be.audio(samples, self.model, Option.AUDIO.value)
        if not per_window:
            return vec, []
        size = round(UNCERTAINTY_WINDOW * 16_000)
        windows = [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]
        return vec, [self.be.audio(w, self.model, Option.AUDIO.value) for w in windows]

    # ---- items

    def _items(self, start: float, stop: float) -> Iterator[V2Segment]:
        if Scope.CLIP in self.request.scopes:
            for span in self.done:
                yield from self._emit(span, Scope.CLIP)
        if Scope.ASSET in self.request.scopes:
            yield from self._emit(self._asset(start, stop), Scope.ASSET)

    def _asset(self, start: float, stop: float) -> _Span:
        """The whole range: each option pooled over its segments, weighted by length."""
        vectors: dict[Option, Vector] = {}
        spreads: dict[Option, Vector] = {}
        for option in self.options:
            spans = [s for s in self.done if option in s.vectors]
            if option is Option.TRANSCRIPTION:
                if self.cues:
                    vectors[option] = v2_text(self.be, cue_text(self.cues, start, stop), self.spec)
                    spreads[option] = _spread([s.vectors[option] for s in spans])
                continue
            rows = np.stack([s.vectors[option] for s in spans])
            weights = np.array([s.end - s.start for s in spans], np.float64)
            vectors[option] = self.be.pool(rows, weights, self.model, option.value)
            spreads[option] = _spread([nest(s.vectors[option], self.spec, option) for s in spans])
        return _Span(start, stop, vectors, spreads)

    def _emit(self, span: _Span, scope: Scope) -> Iterator[V2Segment]:
        dim = self.request.dimension or DIMS
        unc = self.request.uncertainty
        final = {
            o: v if o is Option.TRANSCRIPTION else nest(v, self.spec, o)
            for o, v in span.vectors.items()
        }
        present = [o for o in self.options if o in final]
        if EmbeddingType.SEPARATE in self.request.types:
            for o in present:
                spread = _cut(span.spreads[o], dim) if unc else None
                yield V2Segment(o, scope, span.start, span.end, _cut(final[o], dim), spread)
        if EmbeddingType.FUSED in self.request.types and present:
            parts = [final[o] for o in present] + self._metadata_vectors(span.start, span.end)
            total = np.sum(np.stack(parts).astype(np.float64), axis=0)
            spread = None
            if unc:
                # First-order propagation through the normalisation; metadata text is exact.
                var = sum(span.spreads[o].astype(np.float64) ** 2 for o in present)
                norm = max(float(np.sqrt(np.sum(total * total))), 1e-12)
                spread = _cut((np.sqrt(var) / norm).astype(np.float32), dim)
            yield V2Segment(
                Option.FUSED, scope, span.start, span.end, _cut(fuse(parts), dim), spread
            )

    def _metadata_vectors(self, start: float, end: float) -> list[Vector]:
        return [
            v2_text(self.be, m.text, self.spec)
            for m in self.request.metadata
            if m.start < end and m.end >= start
        ]
