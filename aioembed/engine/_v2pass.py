"""The decode pass behind :func:`aioembed.engine.embed_v2` for video and audio inputs.

One pass per call: pictures are sampled (the backend's ``sample_fps``) and sound
decoded in :data:`TICK`-long ticks; shot or audio-change boundaries are found
online, and a segment's frames and samples are dropped once its vectors exist,
so memory stays flat in the media's length (the one bound:
:data:`~aioembed.engine._segments.MAX_HELD_SHOT`). Vectors are kept raw (the
backend's order) until the items are made, so pooling happens before nesting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from .._params import MediaLimits
from ..errors import ErrorCode
from ._backend import Backend
from ._decode import decode_clips
from ._media import MediaError, MediaSource, _broken, container_info, media_duration, open_media
from ._segments import DynamicCutter, fixed_spans
from ._shots import AudioChangeDetector, ShotDetector
from ._subtitles import Cue, cue_text, read_cues
from ._v2models import DIMS, InputKind, Option, V2Model, cut, fuse, nest, spread, v2_text
from ._v2values import (
    Dynamic,
    EmbeddingType,
    Fixed,
    MediaMetadata,
    Scope,
    Usage,
    V2Request,
    V2Result,
    V2Segment,
)

__all__ = ["TICK", "UNCERTAINTY_WINDOW", "MediaPass", "describe"]

Vector = npt.NDArray[np.float32]

#: Length of the decode ticks (seconds): how often detectors and segments advance.
TICK = 0.5
#: Window over which audio uncertainty is measured (seconds).
UNCERTAINTY_WINDOW = 1.0


def describe(
    container: Any, kind: InputKind, *, decode_first: bool, threads: int | None = None
) -> MediaMetadata:
    """Duration, size and streams of an open video or audio input (range: all of it);
    ``threads`` caps the decoder of a ``decode_first`` picture."""
    if kind is InputKind.VIDEO:
        info = container_info(container, decode_first=decode_first, threads=threads)
        return MediaMetadata(
            info.duration, 0.0, info.duration, info.width, info.height, info.has_audio
        )
    if not container.streams.audio:
        raise MediaError(ErrorCode.PARAMETER_INVALID, "The audio file has no audio stream.")
    video = container.streams.video[0] if container.streams.video else None
    duration = media_duration(container, video, container.streams.audio[0])
    return MediaMetadata(duration, 0.0, duration, has_audio=True)


@attrs.define
class _Span:
    """A finished segment's vectors (512 values) and their spreads, per option."""

    start: float
    end: float
    vectors: dict[Option, Vector]
    spreads: dict[Option, Vector]


class MediaPass:
    """One decode pass over a video or audio input, segment by segment."""

    def __init__(
        self,
        source: MediaSource,
        request: V2Request,
        spec: V2Model,
        options: tuple[Option, ...],
        be: Backend,
        *,
        limits: MediaLimits | None = None,
        threads: int | None = None,
    ) -> None:
        self.source = source
        self.limits = limits  # checked at every picture size change (decode_clips)
        self.threads = threads
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
        described = describe(container, self.request.input_kind, decode_first=False)
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
            limits=self.limits,
            threads=self.threads,
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
                spreads[option] = spread(
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
                    spreads[option] = spread([s.vectors[option] for s in spans])
                continue
            rows = np.stack([s.vectors[option] for s in spans])
            weights = np.array([s.end - s.start for s in spans], np.float64)
            vectors[option] = self.be.pool(rows, weights, self.model, option.value)
            spreads[option] = spread([nest(s.vectors[option], self.spec, option) for s in spans])
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
                spread = cut(span.spreads[o], dim) if unc else None
                yield V2Segment(o, scope, span.start, span.end, cut(final[o], dim), spread)
        if EmbeddingType.FUSED in self.request.types and present:
            parts = [final[o] for o in present] + self._metadata_vectors(span.start, span.end)
            total = np.sum(np.stack(parts).astype(np.float64), axis=0)
            spread = None
            if unc:
                # First-order propagation through the normalisation; metadata text is exact.
                var = sum(span.spreads[o].astype(np.float64) ** 2 for o in present)
                norm = max(float(np.sqrt(np.sum(total * total))), 1e-12)
                spread = cut((np.sqrt(var) / norm).astype(np.float32), dim)
            yield V2Segment(
                Option.FUSED, scope, span.start, span.end, cut(fuse(parts), dim), spread
            )

    def _metadata_vectors(self, start: float, end: float) -> list[Vector]:
        return [
            v2_text(self.be, m.text, self.spec)
            for m in self.request.metadata
            if m.start < end and m.end >= start
        ]
