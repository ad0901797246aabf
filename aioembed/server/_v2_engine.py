"""Embed API v2 work inside a worker process: a checked spec in, stored rows out.

Runs in the worker (never on the event loop). Until the engine's own v2 entry
point lands, vectors come from the v1 engine's ``marengo3.0`` model: ``fixed``
segmentation tiles the range, ``dynamic`` tiles it at ``min(10, 2 x
min_duration_sec)`` (no shot detection yet), ``transcription`` yields no items
(as a media without subtitles does), uncertainty is zero. What this module
guarantees is the contract's shape: options and scopes as requested, items in
the contract's order (clips by time, options in request order then ``fused``,
asset items last), ``fused`` = L2-normalised sum of the segment's option vectors
(plus overlapping ``time_based_metadata`` text on 3.5) and ``embedding_dimension``
as an exact prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ..contract.v2 import EmbedSpec, MediaSpec, Source, TaskSpec, count_tokens, spec_from_json
from .._params import clip_spans
from ..errors import ErrorCode

__all__ = ["Row", "V2EmbedJob", "V2MediaError", "V2TaskJob", "embed_sync", "embed_task"]

Vector = npt.NDArray[np.float32]
#: (start, end, scope, option, vector bytes, uncertainty bytes or None)
Row = tuple[float, float, str, str, bytes, bytes | None]
ENGINE_MODEL = "marengo3.0"
#: Async video/audio duration limits (seconds), inclusive.
MIN_DURATION, MAX_DURATION = 4.0, 4 * 3600.0
SYNC_MAX_DURATION = 600.0
#: A placeholder source for media already on disk.
_ON_DISK = Source("url", "file:")


class V2MediaError(Exception):
    """The media cannot be embedded as asked; ``message`` is the task's ``error.message``."""

    def __init__(self, message: str, code: ErrorCode | str = ErrorCode.PARAMETER_INVALID) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _unit(v: npt.NDArray[Any]) -> Vector:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def _duration(path: str, input_type: str) -> float:
    from ..engine import MediaError, probe
    from ..engine._api import _audio_duration

    try:
        if input_type == "audio":
            return float(_audio_duration(path))
        return float(probe(path).duration)
    except MediaError as e:
        raise V2MediaError(
            "We could not process your media for embedding. Please verify the input file and "
            f"try again. ({e.message})"
        ) from None


def _spans(media: MediaSpec, start: float, end: float) -> list[tuple[float, float]]:
    seg = media.segmentation
    length = 6.0 if seg is None else float(seg.seconds)
    if seg is not None and seg.strategy == "dynamic":
        length = min(10.0, 2.0 * seg.seconds)
    return clip_spans(start, end, length) or [(round(start, 6), round(end, 6))]


def _option_vectors(
    path: str,
    media: MediaSpec,
    spans: list[tuple[float, float]],
    backend: str | None,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, list[Vector]], dict[str, Vector]]:
    """Per option: a vector per span, and one pooled over the range."""
    from ..engine import get_backend, get_model, iter_clips

    be, model = get_backend(backend), get_model(ENGINE_MODEL)
    opts = [o for o in media.options if o in ("visual", "audio")]
    if media.input_type == "audio":
        opts = [o for o in opts if o == "audio"]
    clips: dict[str, list[Vector]] = {o: [] for o in opts}
    if opts:
        video = "visual" in opts
        for done, clip in enumerate(
            iter_clips(
                path,
                spans,
                video=video,
                audio="audio" in opts,
                sample_fps=be.sample_fps,
                frame_size=be.frame_size,
            ),
            start=1,
        ):
            for o in opts:
                if o == "visual":
                    clips[o].append(be.visual(clip.frames, clip.times, model, "visual"))
                else:
                    clips[o].append(be.audio(clip.audio, model, "audio"))
            if progress is not None:
                progress(done, len(spans))
    weights = np.array([e - s for s, e in spans], np.float64)
    pooled = {o: be.pool(np.stack(v), weights, model, o) for o, v in clips.items() if v}
    return clips, pooled


def _text_vector(text: str, backend: str | None) -> Vector:
    from ..engine import embed_text

    return embed_text(text, model_name=ENGINE_MODEL, backend=backend)


def _rows(
    spec: TaskSpec | EmbedSpec,
    media: MediaSpec,
    spans: list[tuple[float, float]],
    clips: dict[str, list[Vector]],
    pooled: dict[str, Vector],
    backend: str | None,
) -> list[Row]:
    dim, unc = spec.embedding_dimension, spec.embedding_uncertainty
    fused = "fused_embedding" in media.types
    separate = "separate_embedding" in media.types
    timed = [(t.start, t.end, _text_vector(t.text, backend)) for t in media.time_based_metadata]

    def row(s: float, e: float, scope: str, option: str, v: Vector) -> Row:
        vec = np.ascontiguousarray(v[:dim], dtype="<f4")
        spread = np.zeros(dim, "<f4").tobytes() if unc else None
        return (float(s), float(e), scope, option, vec.tobytes(), spread)

    def group(s: float, e: float, scope: str, vectors: dict[str, Vector]) -> list[Row]:
        out = [row(s, e, scope, o, v) for o, v in vectors.items()] if separate else []
        if fused and vectors:
            parts = [*vectors.values(), *(v for ts, te, v in timed if ts < e and te >= s)]
            out.append(row(s, e, scope, "fused", _unit(np.sum(parts, axis=0))))
        return out

    rows: list[Row] = []
    if {"clip", "local"} & set(media.scopes):
        for i, (s, e) in enumerate(spans):
            rows.extend(group(s, e, "clip", {o: v[i] for o, v in clips.items()}))
    if "asset" in media.scopes and spans:
        rows.extend(group(spans[0][0], spans[-1][1], "asset", pooled))
    return rows


def _range(media: MediaSpec, duration: float, max_duration: float) -> tuple[float, float]:
    if not MIN_DURATION <= duration <= max_duration:
        raise V2MediaError(
            f"Duration ({duration:.1f} seconds) is outside the limits of {MIN_DURATION:g} to "
            f"{max_duration:g} seconds."
        )
    end = duration if media.end is None else min(media.end, duration)
    if media.start >= end:
        raise V2MediaError(
            f"{media.input_type}.start_sec ({media.start:g}) is not before the end of the media "
            f"({duration:.2f} s)."
        )
    return media.start, end


def embed_task(
    path: str,
    spec: TaskSpec,
    *,
    backend: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_duration: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """``{"duration", "segments": [Row], "usage"}`` for one v2 task."""
    media = spec.media
    if media.input_type == "image":
        return {
            "duration": None,
            "segments": _image_rows(path, spec, backend),
            "usage": _usage(spec, {"image": 1}),
        }
    duration = _duration(path, media.input_type)
    if on_duration is not None:
        on_duration(duration)
    start, end = _range(media, duration, MAX_DURATION)
    spans = _spans(media, start, end)
    clips, pooled = _option_vectors(path, media, spans, backend, progress)
    rows = _rows(spec, media, spans, clips, pooled, backend)
    tokens = {media.input_type: round(end - start)}
    return {"duration": duration, "segments": rows, "usage": _usage(spec, tokens)}


def _image_rows(path: str, spec: TaskSpec | EmbedSpec, backend: str | None) -> list[Row]:
    vec = _image_vector(path, backend)[: spec.embedding_dimension]
    spread = np.zeros(len(vec), "<f4").tobytes() if spec.embedding_uncertainty else None
    return [(0.0, 0.0, "asset", "visual", np.ascontiguousarray(vec, "<f4").tobytes(), spread)]


def _image_vector(path: str, backend: str | None) -> Vector:
    from ..engine import MediaError, embed_image

    try:
        return embed_image(path, model_name=ENGINE_MODEL, backend=backend)
    except MediaError as e:
        raise V2MediaError(f"The image could not be decoded: {e.message}") from None


def _usage(spec: TaskSpec | EmbedSpec, tokens: dict[str, int]) -> dict[str, Any] | None:
    if spec.model_name != "marengo3.5":
        return None
    return {"input_tokens": tokens, "truncated": False}


def embed_sync(
    spec: EmbedSpec, paths: dict[str, str], *, backend: str | None = None
) -> dict[str, Any]:
    """``POST /embed-v2`` work: ``paths`` maps a JSON path (``image.media_source``,
    ``multi_input.media_sources[0]``) to the fetched file. Returns ``{"rows", "usage",
    "duration"}``; rows of text/image/multi_input have null option, scope and times."""
    if spec.input_type in ("audio", "video"):
        assert spec.media is not None
        path = paths[f"{spec.input_type}.media_source"]
        duration = _duration(path, spec.input_type)
        start, end = _range(spec.media, duration, SYNC_MAX_DURATION)
        spans = _spans(spec.media, start, end)
        clips, pooled = _option_vectors(path, spec.media, spans, backend, None)
        rows = _rows(spec, spec.media, spans, clips, pooled, backend)
        return {"rows": rows, "usage": None, "duration": duration}
    parts: list[Vector] = []
    tokens: dict[str, int] = {}
    if spec.text is not None:
        parts.append(_text_vector(spec.text, backend))
        tokens["text"] = count_tokens(spec.text)
    for key, path in paths.items():
        kind = _source_kind(spec, key)
        parts.append(_source_vector(path, kind, backend))
        tokens[kind] = tokens.get(kind, 0) + 1
    vec = _unit(np.sum(parts, axis=0))[: spec.embedding_dimension]
    spread = np.zeros(len(vec), "<f4").tobytes() if spec.embedding_uncertainty else None
    row: Row = (0.0, 0.0, "", "", np.ascontiguousarray(vec, "<f4").tobytes(), spread)
    return {"rows": [row], "usage": _usage(spec, tokens), "duration": None}


def _source_kind(spec: EmbedSpec, key: str) -> str:
    if key.startswith("multi_input.media_sources["):
        index = int(key.split("[", 1)[1].split("]", 1)[0])
        return spec.sources[index].media_type
    return "image"


def _source_vector(path: str, kind: str, backend: str | None) -> Vector:
    if kind == "image":
        return _image_vector(path, backend)
    media = MediaSpec(
        kind,
        source=_ON_DISK,
        options=("visual", "audio"),
        scopes=("asset",),
        types=("separate_embedding",),
    )
    duration = _duration(path, kind)
    spans = _spans(media, 0.0, duration)
    _, pooled = _option_vectors(path, media, spans, backend, None)
    return _unit(np.sum(list(pooled.values()), axis=0))


@attrs.frozen
class V2TaskJob:
    """A v2 task for a worker; ``spec`` is the stored JSON. Sends ``meta`` (duration) and
    ``progress``; result as :func:`embed_task`."""

    path: str
    spec: str
    backend: str | None = None

    def run(self, send: Callable[..., None]) -> dict[str, Any]:
        spec = spec_from_json(json.loads(self.spec), TaskSpec)
        return embed_task(
            self.path,
            spec,
            backend=self.backend,
            progress=lambda done, total: send("progress", int(done), int(total)),
            on_duration=lambda d: send("meta", float(d)),
        )


@attrs.frozen
class V2EmbedJob:
    """``POST /embed-v2`` for a sync worker; result as :func:`embed_sync`."""

    spec: str
    paths: tuple[tuple[str, str], ...]
    backend: str | None = None

    def run(self, send: Callable[..., None]) -> dict[str, Any]:
        spec = spec_from_json(json.loads(self.spec), EmbedSpec)
        return embed_sync(spec, dict(self.paths), backend=self.backend)
