"""The embedding engine: decode, segment and embed video, audio, images and text.

Plain synchronous functions (the server runs them in worker processes)::

    info = probe("a.mp4")                    # cheap: container metadata + one frame
    check_media(info, MediaLimits())         # contract limits -> MediaError(code, message)
    segments = embed_video("a.mp4", model_name="marengo3.0", scopes=("clip", "video"))
    embed_image("x.png", model_name="marengo3.0")     # same space as visual clips
    embed_audio("a.wav", model_name="marengo3.0")     # 10 s segments, same space as audio clips
    embed_text("a red car", model_name="marengo3.0")  # hashed n-grams: not cross-modal

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

__all__ = [
    "AUDIO_RATE",
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "Backend",
    "ClipMedia",
    "MediaError",
    "MediaInfo",
    "MediaLimits",
    "Model",
    "SegmentVector",
    "available_backends",
    "check_media",
    "embed_audio",
    "embed_image",
    "embed_text",
    "embed_video",
    "get_backend",
    "get_model",
    "iter_clips",
    "probe",
    "register_backend",
]
