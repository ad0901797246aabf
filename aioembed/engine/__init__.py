"""The embedding engine: decode, segment and embed video, audio, images and text.

Plain synchronous functions (the server runs them in worker processes)::

    info = probe("a.mp4")                    # cheap: container metadata + one frame
    check_media(info, MediaLimits())         # contract limits -> MediaError(code, message)
    segments = embed_video("a.mp4", model_name="marengo3.0", scopes=("clip", "video"))
    embed_image("x.png", model_name="marengo3.0")     # same space as visual clips
    embed_audio("a.wav", model_name="marengo3.0")     # 10 s segments, same space as audio clips
    embed_text("a red car", model_name="marengo3.0")  # hashed n-grams: not cross-modal
    embed_v2("a.mp4", V2Request(model="marengo3.5", input_kind="video"))  # Embed API v2

Vectors come from a :class:`Backend` chosen by name (``backend=``); the default
``"features"`` is weights-free and deterministic. Others plug in through
:func:`register_backend` or the ``aioembed.backends`` entry-point group; each
backend's :class:`Catalogue` says which models it serves. Needs the ``engine``
extra (PyAV and NumPy), loaded on first use of a name that needs it: the
catalogue and the registry (``Catalogue``, ``Model``, ``backend_catalogue``...)
import without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._api import SegmentVector, embed_audio, embed_image, embed_text, embed_video
    from ._backend import Backend
    from ._catalogue import CONTRACT_CATALOGUE, Catalogue, Model, OptionKind
    from ._decode import AUDIO_RATE, ClipMedia, iter_clips
    from ._media import MediaError, MediaField, MediaInfo, MediaLimits, check_media, probe
    from ._registry import (
        DEFAULT_BACKEND,
        ENTRY_POINT_GROUP,
        available_backends,
        backend_catalogue,
        get_backend,
        get_model,
        register_backend,
    )
    from ._v2 import (
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
        count_tokens,
        embed_text_v2,
        embed_v2,
        fuse,
        media_vector,
        probe_v2,
    )
    from ._v2models import V2_MODELS, InputKind, Option, V2Model, get_v2_model

#: Where each public name lives; a module is imported when one of its names is first used.
_HOMES = {
    "._api": ("SegmentVector", "embed_audio", "embed_image", "embed_text", "embed_video"),
    "._backend": ("Backend",),
    "._catalogue": ("CONTRACT_CATALOGUE", "Catalogue", "Model", "OptionKind"),
    "._decode": ("AUDIO_RATE", "ClipMedia", "iter_clips"),
    "._media": ("MediaError", "MediaField", "MediaInfo", "MediaLimits", "check_media", "probe"),
    "._registry": (
        "DEFAULT_BACKEND",
        "ENTRY_POINT_GROUP",
        "available_backends",
        "backend_catalogue",
        "get_backend",
        "get_model",
        "register_backend",
    ),
    "._v2": (
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
    ),
    "._v2models": ("V2_MODELS", "InputKind", "Option", "V2Model", "get_v2_model"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AUDIO_RATE",
    "Backend",
    "CONTRACT_CATALOGUE",
    "Catalogue",
    "ClipMedia",
    "DEFAULT_BACKEND",
    "Dynamic",
    "ENTRY_POINT_GROUP",
    "EmbeddingType",
    "Fixed",
    "InputKind",
    "MediaError",
    "MediaField",
    "MediaInfo",
    "MediaLimits",
    "MediaMetadata",
    "MetadataEntry",
    "Model",
    "Option",
    "OptionKind",
    "Scope",
    "SegmentVector",
    "Usage",
    "V2Model",
    "V2Request",
    "V2Result",
    "V2Segment",
    "V2_MODELS",
    "available_backends",
    "backend_catalogue",
    "check_media",
    "count_tokens",
    "embed_audio",
    "embed_image",
    "embed_text",
    "embed_text_v2",
    "embed_v2",
    "embed_video",
    "fuse",
    "get_backend",
    "get_model",
    "get_v2_model",
    "iter_clips",
    "media_vector",
    "probe",
    "probe_v2",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
