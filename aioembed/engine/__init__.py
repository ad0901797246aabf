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
:func:`register_backend` or the ``aioembed.backends`` entry-point group. Needs the
``engine`` extra (PyAV and NumPy).
"""

from ._api import SegmentVector, embed_audio, embed_image, embed_text, embed_video
from ._backend import (
    DEFAULT_BACKEND,
    ENTRY_POINT_GROUP,
    Backend,
    Model,
    available_backends,
    get_backend,
    get_model,
    register_backend,
)
from ._decode import AUDIO_RATE, ClipMedia, iter_clips
from ._media import MediaError, MediaInfo, MediaLimits, check_media, probe
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

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "V2_MODELS",
    "Backend",
    "ClipMedia",
    "Dynamic",
    "EmbeddingType",
    "Fixed",
    "InputKind",
    "MediaError",
    "MediaInfo",
    "MediaLimits",
    "MediaMetadata",
    "MetadataEntry",
    "Model",
    "Option",
    "Scope",
    "SegmentVector",
    "Usage",
    "V2Model",
    "V2Request",
    "V2Result",
    "V2Segment",
    "available_backends",
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
