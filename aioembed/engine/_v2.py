"""Embed API v2 in the engine: one call per request, plain values in and out.

The server's v2 adapter parses and validates the wire request (``_params``-style,
shared with the SDK), then calls, inside a worker process::

    from aioembed.engine import V2Request, Fixed, Dynamic, embed_v2, embed_text_v2, fuse

    result = embed_v2(path_or_bytes, V2Request(
        model="marengo3.5", input_kind="video",          # "video" | "audio" | "image"
        start_sec=0.0, end_sec=None,                     # None: to the end of the media
        segmentation=Dynamic(min_duration_sec=2),        # or Fixed(duration_sec=6); None: default
        options=("visual", "audio"),                     # None: the model's default for the kind
        scopes=("clip", "asset"), types=("separate_embedding", "fused_embedding"),
        dimension=256, uncertainty=False,                # dimension: 3.5 only (None: 512)
        metadata=(MetadataEntry(3.0, 3.0, "goal"),),     # time_based_metadata (3.5)
    ))
    result.segments   # tuple[V2Segment]: option, scope, start, end, vector (float32), uncertainty
    result.media      # MediaMetadata: duration, start/end offsets, size, streams; None for images
    result.usage      # Usage: input_tokens {"video": seconds, ...}, truncated

    probe_v2(path, "audio")          # MediaMetadata before a task: duration, size (cheap)
    vec, usage = embed_text_v2("a red car", model="marengo3.5", dimension=256, truncate_at=2000)
    count_tokens(text)               # the engine's tokens, for the wire's text limits
    fuse([v1, v2, ...])              # text_image / multi_input: L2-normalise(sum)
    media_vector(path, "video", model="marengo3.0")   # a multi_input source's vector

Segments come in the contract's order: clip items by ``start``, within a segment
the options in request order then ``fused``; asset items last (same inner order).
Image items have scope ``asset`` and no times. Every vector has ``dimension``
values (512 by default); on ``marengo3.5`` it is the prefix of the 512-value
vector, not renormalised.

One decode pass per call, memory flat in the media's length
(:mod:`aioembed.engine._v2pass`); subtitles are read by demuxing their stream
alone (:mod:`aioembed.engine._subtitles`). Models, defaults and 3.5's dimension
order: :mod:`aioembed.engine._v2models`; segmentation rules and shot detection:
:mod:`aioembed.engine._segments`, :mod:`aioembed.engine._shots`.

Errors: :class:`~aioembed.engine.MediaError` for bad media (``video_file_broken``
for a file that does not decode; ``parameter_invalid`` for a range outside the
media, an audio input without sound or an image that does not decode);
:class:`ValueError`/:class:`KeyError` for misuse (an option, type or dimension
the model or input kind does not take) - the wire layer rejects those first.
"""

from __future__ import annotations

import re

import numpy as np

from .._params import MediaLimits
from ._backend import Backend
from ._decode import decode_image
from ._media import MediaSource, open_media
from ._registry import get_backend
from ._v2models import (
    DIMS,
    InputKind,
    Option,
    V2Model,
    Vector,
    cut,
    fuse,
    get_v2_model,
    nest,
    v2_text,
)
from ._v2pass import MediaPass, describe
from ._v2values import (
    Dynamic,
    EmbeddingType,
    Fixed,
    MediaMetadata,
    MetadataEntry,
    Scope,
    Usage,
    V2Request,
    V2Result,
    V2Segment,
)

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

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
IMAGE_TOKENS = 256


def count_tokens(text: str) -> int:
    """Tokens of ``text`` by the engine's tokenizer (words and punctuation marks)."""
    return sum(1 for _ in _TOKEN.finditer(text))


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
    return cut(vec, dimension or DIMS), Usage({"text": len(tokens)}, truncated)


def media_vector(
    source: MediaSource, kind: str, *, model: str, backend: str | None = None
) -> Vector:
    """One 512-value vector for a ``multi_input`` source: an image's visual vector, an
    audio's asset audio vector, a video's asset vectors (its default options) fused."""
    request = V2Request(model=model, input_kind=kind, scopes=(Scope.ASSET,))
    items = embed_v2(source, request, backend=backend).segments
    return items[0].vector if len(items) == 1 else fuse(s.vector for s in items)


def embed_v2(
    source: MediaSource,
    request: V2Request,
    *,
    backend: str | None = None,
    limits: MediaLimits | None = None,
    threads: int | None = None,
    max_pixels: int | None = None,
) -> V2Result:
    """Embed a video, audio or image input as ``request`` says (see the module docstring).

    Bounds for untrusted media (``None``: none, FFmpeg's thread count): ``limits``
    checks a video's resolution at its first picture and at every size change
    mid-stream (``video_resolution_too_low/high``), so a small first picture cannot
    hide a huge one; ``threads`` caps the video decoder's threads; ``max_pixels``
    caps an image's picture, read from its header before decoding.
    """
    spec = get_v2_model(request.model)
    options = _check(request, spec)
    be = get_backend(backend)
    if request.input_kind is InputKind.IMAGE:
        return _embed_image(source, request, spec, be, max_pixels)
    return MediaPass(source, request, spec, options, be, limits=limits, threads=threads).run()


def _embed_image(
    source: MediaSource, request: V2Request, spec: V2Model, be: Backend, max_pixels: int | None
) -> V2Result:
    img = decode_image(source, be.frame_size, max_pixels=max_pixels)
    raw = be.visual(img[None], np.zeros(1), spec.backend_model, Option.VISUAL.value)
    vec = nest(raw, spec, Option.VISUAL)
    dim = request.dimension or DIMS
    unc = np.zeros(dim, np.float32) if request.uncertainty else None
    item = V2Segment(Option.VISUAL, Scope.ASSET, None, None, cut(vec, dim), unc)
    return V2Result((item,), None, Usage({"image": IMAGE_TOKENS}))


def probe_v2(source: MediaSource, kind: str, *, threads: int | None = None) -> MediaMetadata:
    """Duration, size and streams of a video or audio input, checked cheaply (a video's
    first frame is decoded, by at most ``threads`` threads), for media checks at create time.

    Raises :class:`MediaError` ``video_file_broken`` (a video that does not open or
    decode) or ``parameter_invalid`` (an audio input without sound).
    """
    with open_media(source) as container:
        return describe(container, InputKind(kind), decode_first=True, threads=threads)
