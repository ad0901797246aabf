"""The OpenAPI 3.1 description of what this server serves (``GET /v1.3/openapi.json``).

Generated from the v1 contract (:mod:`aioembed.contract`); this module adds only
what this server knows: its models, options and configured limits.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .._params import MODELS
from ..contract import v1
from ..contract._openapi import openapi_document as generate
from ._config import ServerConfig

__all__ = ["openapi_document"]


def openapi_document(config: ServerConfig) -> dict[str, Any]:
    limits = config.media_limits
    options = sorted({o for m in MODELS.values() for o in m.video_options})
    notes: dict[str, dict[str, Any]] = {
        "model_name": {"enum": list(MODELS)},
        "embedding_option": {"enum": options},
        "video_file": {
            "description": f"at most {config.max_upload_bytes} bytes; "
            f"{limits.min_duration:g}-{limits.max_duration:g} s, "
            f"{limits.min_width}x{limits.min_height}-{limits.max_width}x{limits.max_height}; "
            "if video_url is given too, it wins"
        },
    }
    return generate(
        v1.API,
        title="aioembed local embed server",
        version=__version__,
        description=(
            f"{v1.API.description} Served by a local engine: vectors are the local "
            "engine's, not TwelveLabs'. Operations marked [ext] are aioembed extensions."
        ),
        error_model=v1.ErrorBody,
        renames=v1.RENAMES,
        notes=notes,
    )
