"""The values of an Embed API v2 engine call: the request, its parts and the result.

Plain frozen attrs classes (picklable: they cross into worker processes); enum
fields also take their wire strings. See :mod:`aioembed.engine._v2` for the call.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs
import numpy as np
import numpy.typing as npt

from ._v2models import InputKind, Option

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
]

Vector = npt.NDArray[np.float32]


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
