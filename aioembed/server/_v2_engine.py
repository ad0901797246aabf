"""Embed API v2 work inside a worker process: a checked spec in, stored rows out.

Runs in the worker, never on the event loop. The wire layer has applied every
contract rule (:mod:`aioembed.contract.v2`); this module maps the checked spec
onto the engine's v2 entry points (:func:`aioembed.engine.embed_v2`,
``embed_text_v2``, ``probe_v2``, ``fuse``), checks the media's duration against
the contract's limits first (a probe, not a decode), and turns the engine's
items into stored rows. The engine owns the vectors and the contract's shape:
items in order (clips by time, options in request order then ``fused``, asset
items last), shot-boundary (video) and audio-change (audio) segmentation
honouring ``min_duration_sec``, ``transcription`` from the media's subtitle
stream (no item, not an error, without one), ``fused`` with overlapping
``time_based_metadata`` text (3.5), the 3.5 ``embedding_dimension`` prefix and
uncertainty (the spread over a segment's frames or windows).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from .._params import MediaLimits
from ..contract.v2 import EmbedSpec, MediaSpec, TaskSpec, spec_from_json
from ..errors import ErrorCode

if TYPE_CHECKING:
    from ..engine import MediaMetadata, V2Request, V2Result

__all__ = [
    "MAX_DURATION",
    "MIN_DURATION",
    "Row",
    "SYNC_MAX_DURATION",
    "V2Bounds",
    "V2EmbedJob",
    "V2MediaError",
    "V2TaskJob",
    "asset_of",
    "check_duration",
    "embed_sync",
    "embed_task",
]

Vector = npt.NDArray[np.float32]
#: (start, end, scope, option, vector bytes, uncertainty bytes or None); images store 0, 0.
Row = tuple[float, float, str, str, bytes, bytes | None]
#: Async video/audio duration limits (seconds), inclusive.
MIN_DURATION, MAX_DURATION = 4.0, 4 * 3600.0
#: ``POST /embed-v2`` audio/video (marengo3.0; no minimum), a marengo3.5 ``multi_input`` source.
SYNC_MAX_DURATION, MULTI_SOURCE_MAX_DURATION = 600.0, 30.0
#: marengo3.5 text over this many tokens is cut when ``auto_truncate`` is on.
TEXT_TOKENS_35 = 2000
UNREADABLE = (
    "We could not process your media for embedding. Please verify the input file and try again."
)


class V2MediaError(Exception):
    """The media cannot be embedded as asked; ``message`` is the task's ``error.message``."""

    def __init__(self, message: str, code: ErrorCode | str = ErrorCode.PARAMETER_INVALID) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _upper_only(limits: MediaLimits | None) -> MediaLimits | None:
    # v2 has never refused small videos, and a small picture costs nothing to decode:
    # the bound is against huge ones, so only the maximum of the v1 limits applies.
    return None if limits is None else attrs.evolve(limits, min_width=1, min_height=1)


@attrs.frozen
class V2Bounds:
    """The server's bounds on decoding untrusted media, as v1 jobs get them
    (``ServerConfig``): a video's maximum resolution at every size change
    (``limits``), the decoder's threads, an image's pixels from its header. The
    defaults bound nothing."""

    limits: MediaLimits | None = attrs.field(default=None, converter=_upper_only)
    threads: int | None = None
    max_pixels: int | None = None


#: Engine codes the contract answers as ``parameter_invalid``: limits, not broken media.
_OUT_OF_LIMITS = (ErrorCode.VIDEO_RESOLUTION_TOO_LOW, ErrorCode.VIDEO_RESOLUTION_TOO_HIGH)


def asset_of(spec: str | None) -> str | None:
    """The ``asset_id`` a stored v2 task spec (JSON) embeds, if its source is one."""
    if spec is None:
        return None
    source = json.loads(spec)["media"]["source"]
    return str(source["value"]) if source["kind"] == "asset_id" else None


def check_duration(
    media: MediaSpec, duration: float, max_duration: float, min_duration: float = MIN_DURATION
) -> None:
    """The contract's duration limits and ``start_sec`` within the media, as
    :class:`V2MediaError` (a task's ``error.message``, or a 400 at create)."""
    if not min_duration <= duration <= max_duration:
        raise V2MediaError(
            f"Duration ({duration:.1f} seconds) is outside the limits of {min_duration:g} to "
            f"{max_duration:g} seconds."
        )
    if media.start >= duration:
        raise V2MediaError(
            f"{media.input_type}.start_sec ({media.start:g}) is not before the end of the media "
            f"({duration:.2f} s)."
        )


def _probe(path: str, kind: str, threads: int | None) -> MediaMetadata:
    from ..engine import MediaError, probe_v2

    try:
        return probe_v2(path, kind, threads=threads)
    except MediaError as e:
        raise V2MediaError(f"{UNREADABLE} ({e.message})", e.code) from None


def _request(spec: TaskSpec | EmbedSpec, media: MediaSpec) -> V2Request:
    from ..engine import Dynamic, Fixed, MetadataEntry, V2Request

    seg = media.segmentation
    segmentation: Fixed | Dynamic | None = None
    if seg is not None:
        segmentation = Fixed(seg.seconds) if seg.strategy == "fixed" else Dynamic(seg.seconds)
    # ``local`` answers ``clip`` for video and audio; the stored spec keeps it for metadata.
    scopes = tuple(dict.fromkeys("clip" if s == "local" else s for s in media.scopes))
    nested = spec.model_name == "marengo3.5"
    entries: list[MetadataEntry] = [
        MetadataEntry(t.start, t.end, t.text) for t in media.time_based_metadata
    ]
    return V2Request(
        model=spec.model_name,
        input_kind=media.input_type,
        start_sec=media.start,
        end_sec=media.end,
        segmentation=segmentation,
        options=media.options or None,
        scopes=scopes or ("asset",),
        types=media.types or ("separate_embedding",),
        dimension=spec.embedding_dimension if nested else None,
        uncertainty=spec.embedding_uncertainty,
        metadata=entries,  # type: ignore[arg-type]  # attrs' converter=tuple
    )


def _run(path: str, request: V2Request, backend: str | None, bounds: V2Bounds) -> V2Result:
    from ..engine import MediaError, embed_v2

    try:
        return embed_v2(
            path,
            request,
            backend=backend,
            limits=bounds.limits,
            threads=bounds.threads,
            max_pixels=bounds.max_pixels,
        )
    except MediaError as e:
        if e.code in _OUT_OF_LIMITS:
            raise V2MediaError(e.message) from None
        raise V2MediaError(f"{UNREADABLE} ({e.message})", e.code) from None


def _bytes(v: Vector) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def _rows(result: V2Result) -> list[Row]:
    return [
        (
            float(s.start or 0.0),
            float(s.end or 0.0),
            s.scope.value,
            s.option.value,
            _bytes(s.vector),
            None if s.uncertainty is None else _bytes(s.uncertainty),
        )
        for s in result.segments
    ]


def _usage(spec: TaskSpec | EmbedSpec, tokens: dict[str, int], truncated: bool) -> Any:
    """``usage`` as stored: marengo3.5 only (3.0 answers none), the engine's own counts."""
    if spec.model_name != "marengo3.5":
        return None
    usage: dict[str, Any] = {"input_tokens": tokens, "truncated": truncated}
    if truncated:
        usage["truncation_reason"] = "model_context_window"
    return usage


def embed_task(
    path: str,
    spec: TaskSpec,
    *,
    backend: str | None = None,
    on_duration: Callable[[float], None] | None = None,
    bounds: V2Bounds = V2Bounds(),
) -> dict[str, Any]:
    """``{"duration", "segments": [Row], "usage"}`` for one v2 task; :class:`V2MediaError`
    for media that cannot be embedded as asked."""
    media = spec.media
    duration = None
    if media.input_type != "image":
        duration = _probe(path, media.input_type, bounds.threads).duration
        if on_duration is not None:
            on_duration(duration)
        check_duration(media, duration, MAX_DURATION)
    result = _run(path, _request(spec, media), backend, bounds)
    usage = _usage(spec, dict(result.usage.input_tokens), result.usage.truncated)
    return {"duration": duration, "segments": _rows(result), "usage": usage}


def embed_sync(
    spec: EmbedSpec,
    paths: dict[str, str],
    *,
    backend: str | None = None,
    truncate_at: int = TEXT_TOKENS_35,
    bounds: V2Bounds = V2Bounds(),
) -> dict[str, Any]:
    """``POST /embed-v2`` work: ``paths`` maps a JSON path (``image.media_source``,
    ``multi_input.media_sources[0]``) to the media's local file. Returns ``{"rows",
    "usage", "duration"}``; the rows of text, image, text_image and multi_input have no
    option, scope or times (the answer sends them as ``null``)."""
    if spec.input_type in ("audio", "video"):
        assert spec.media is not None
        path = paths[f"{spec.input_type}.media_source"]
        duration = _probe(path, spec.input_type, bounds.threads).duration
        check_duration(spec.media, duration, SYNC_MAX_DURATION, min_duration=0.0)
        result = _run(path, _request(spec, spec.media), backend, bounds)
        return {"rows": _rows(result), "usage": None, "duration": duration}
    return _combined(spec, paths, backend, truncate_at, bounds)


def _combined(
    spec: EmbedSpec, paths: dict[str, str], backend: str | None, truncate_at: int, bounds: V2Bounds
) -> dict[str, Any]:
    """text, image, text_image, multi_input: one vector, the ``fuse`` of the parts.

    Uncertainty is the part's own for a single media source, else zeros (a text, or
    several parts, has no frames to spread over)."""
    from ..engine import embed_text_v2, fuse

    parts: list[Vector] = []
    spreads: list[Vector | None] = []
    tokens: dict[str, int] = {}
    truncated = False
    if spec.text is not None:
        cut = truncate_at if spec.auto_truncate else None
        vec, usage = embed_text_v2(
            spec.text, model=spec.model_name, truncate_at=cut, backend=backend
        )
        parts.append(vec)
        spreads.append(None)
        tokens["text"], truncated = usage.input_tokens["text"], usage.truncated
    for key, path in paths.items():
        kind = _source_kind(spec, key)
        vec, spread, used = _source_vector(spec, path, kind, backend, bounds)
        parts.append(vec)
        spreads.append(spread)
        for name, n in used.items():
            tokens[name] = tokens.get(name, 0) + n
    dim = spec.embedding_dimension
    vec = (parts[0] if len(parts) == 1 else fuse(parts))[:dim]
    unc = None
    if spec.embedding_uncertainty:
        own = spreads[0] if len(spreads) == 1 else None
        unc = _bytes(own[:dim] if own is not None else np.zeros(dim, np.float32))
    row: Row = (0.0, 0.0, "", "", _bytes(vec), unc)
    return {"rows": [row], "usage": _usage(spec, tokens, truncated), "duration": None}


def _source_kind(spec: EmbedSpec, key: str) -> str:
    if key.startswith("multi_input.media_sources["):
        index = int(key.split("[", 1)[1].split("]", 1)[0])
        return spec.sources[index].media_type
    return "image"


def _source_vector(
    spec: EmbedSpec, path: str, kind: str, backend: str | None, bounds: V2Bounds
) -> tuple[Vector, Vector | None, dict[str, int]]:
    """A source's 512-value vector (an image's visual vector; audio/video: the asset
    items of the model's default options, fused), its spread and its usage."""
    from ..engine import V2Request, fuse

    if kind != "image" and spec.input_type == "multi_input" and spec.model_name == "marengo3.5":
        duration = _probe(path, kind, bounds.threads).duration
        if duration > MULTI_SOURCE_MAX_DURATION:
            raise V2MediaError(
                f"Duration ({duration:.1f} seconds) exceeds maximum limit of "
                f"{MULTI_SOURCE_MAX_DURATION:g} seconds."
            )
    request = V2Request(
        model=spec.model_name,
        input_kind=kind,
        scopes=("asset",),
        uncertainty=spec.embedding_uncertainty,
    )
    result = _run(path, request, backend, bounds)
    items: Sequence[Any] = result.segments
    if len(items) == 1:
        return items[0].vector, items[0].uncertainty, dict(result.usage.input_tokens)
    return fuse(s.vector for s in items), None, dict(result.usage.input_tokens)


@attrs.frozen
class V2TaskJob:
    """A v2 task for a worker; ``spec`` is the stored JSON. Sends ``meta`` (the
    duration, once probed); result as :func:`embed_task`."""

    path: str
    spec: str
    backend: str | None = None
    bounds: V2Bounds = V2Bounds()

    def run(self, send: Callable[..., None]) -> dict[str, Any]:
        spec = spec_from_json(json.loads(self.spec), TaskSpec)
        return embed_task(
            self.path,
            spec,
            backend=self.backend,
            on_duration=lambda d: send("meta", float(d)),
            bounds=self.bounds,
        )


@attrs.frozen
class V2EmbedJob:
    """``POST /embed-v2`` for a sync worker; result as :func:`embed_sync`."""

    spec: str
    paths: tuple[tuple[str, str], ...]
    backend: str | None = None
    truncate_at: int = TEXT_TOKENS_35
    bounds: V2Bounds = V2Bounds()

    def run(self, send: Callable[..., None]) -> dict[str, Any]:
        spec = spec_from_json(json.loads(self.spec), EmbedSpec)
        return embed_sync(
            spec,
            dict(self.paths),
            backend=self.backend,
            truncate_at=self.truncate_at,
            bounds=self.bounds,
        )
