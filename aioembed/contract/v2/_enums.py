"""The Embed API v2's closed vocabularies, as ``StrEnum``: exact, lower-case wire values."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EmbeddingOption",
    "EmbeddingScope",
    "EmbeddingType",
    "InputType",
    "MediaType",
    "ModelName",
    "SegmentationStrategy",
]


class ModelName(StrEnum):
    MARENGO_3_0 = "marengo3.0"
    MARENGO_3_5 = "marengo3.5"


class InputType(StrEnum):
    """``input_type``: tasks take video, audio, image, document; ``POST /embed-v2`` the rest."""

    VIDEO = "video"
    AUDIO = "audio"
    IMAGE = "image"
    DOCUMENT = "document"
    TEXT = "text"
    TEXT_IMAGE = "text_image"
    MULTI_INPUT = "multi_input"


class EmbeddingOption(StrEnum):
    """What a vector describes; ``fused`` and ``text`` appear in results only."""

    VISUAL = "visual"
    AUDIO = "audio"
    TRANSCRIPTION = "transcription"
    TEXT = "text"
    FUSED = "fused"


class EmbeddingScope(StrEnum):
    """Requested ``clip``/``local``/``asset``; results answer ``clip`` for ``local``
    (``page``/``chunk`` for documents)."""

    CLIP = "clip"
    LOCAL = "local"
    ASSET = "asset"
    PAGE = "page"
    CHUNK = "chunk"


class EmbeddingType(StrEnum):
    SEPARATE = "separate_embedding"
    FUSED = "fused_embedding"


class SegmentationStrategy(StrEnum):
    FIXED = "fixed"
    DYNAMIC = "dynamic"


class MediaType(StrEnum):
    """A ``multi_input`` source's ``media_type``."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
