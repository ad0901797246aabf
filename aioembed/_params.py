"""The contract's parameter rules, written once for both ends.

The client runs these checks before an upload starts and the server runs them
before it stores a body, so a bad request fails the same way (same ``code``,
same message) whichever side catches it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from .errors import ErrorCode, ParameterError

__all__ = [
    "DEFAULT_CLIP_LENGTH",
    "EMBED_INPUTS",
    "MAX_UPLOAD_BYTES",
    "MODELS",
    "MediaLimits",
    "ModelInfo",
    "TaskParams",
    "check_embed_input",
    "check_task_params",
    "clip_spans",
    "invalid",
    "not_provided",
    "parse_number",
    "unknown",
]

DEFAULT_CLIP_LENGTH = 6.0
MIN_CLIP_LENGTH = 2.0
MAX_CLIP_LENGTH = 10.0
#: A final remainder shorter than this is dropped rather than kept as a short clip.
MIN_LAST_CLIP = 2.0
MAX_UPLOAD_BYTES = 2 * 1024**3
SCOPES = ("clip", "video")


@attrs.frozen
class ModelInfo:
    name: str
    dims: int
    video_options: tuple[str, ...]


MODELS: Mapping[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("Marengo-retrieval-2.7", 1024, ("visual-text", "audio")),
        ModelInfo("marengo3.0", 512, ("visual", "audio")),
    )
}


def invalid(name: str, rule: str) -> ParameterError:
    return ParameterError(
        f"The {name} parameter is invalid. {rule}", code=ErrorCode.PARAMETER_INVALID
    )


def not_provided(name: str) -> ParameterError:
    return ParameterError(
        f"The {name} parameter is required but was not provided.",
        code=ErrorCode.PARAMETER_NOT_PROVIDED,
    )


def unknown(name: str) -> ParameterError:
    shown = name if len(name) <= 64 else name[:61] + "..."
    return ParameterError(
        f"The {shown!r} parameter is unknown. Check the parameter name.",
        code=ErrorCode.PARAMETER_UNKNOWN,
    )


def parse_number(name: str, value: object) -> float:
    """A finite float from a form field (``"6"``, ``"12.5"``) or a Python number."""
    if isinstance(value, bool):
        raise invalid(name, f"{name} should be a number.")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid(name, f"{name} should be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(number):
        raise invalid(name, f"{name} should be a finite number.")
    return number


@attrs.frozen
class MediaLimits:
    """The contract's video limits (inclusive), in seconds and pixels; a server may change them.

    Resolution is checked orientation-free: a portrait 2160x3840 video passes the
    default 3840x2160 maximum, as a rotated phone video should.
    """

    min_duration: float = 4.0
    max_duration: float = 7200.0
    min_width: int = 360
    min_height: int = 360
    max_width: int = 3840
    max_height: int = 2160


@attrs.frozen
class TaskParams:
    """A create request's form fields after parsing; ``end`` is ``None`` for "to the end"."""

    model_name: str
    video_url: str | None = None
    start: float = 0.0
    end: float | None = None
    clip_length: float = DEFAULT_CLIP_LENGTH
    scopes: tuple[str, ...] = ("clip",)


def check_task_params(
    model_name: str | None,
    *,
    start: float = 0.0,
    end: float | None = None,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    scopes: Sequence[str] = ("clip",),
    has_file: bool,
    video_url: str | None = None,
    known_models: Iterable[str] | None = None,
) -> TaskParams:
    """Apply the contract's form-only rules, in its precedence order.

    ``known_models`` is checked only when given: the server knows its models,
    while the client lets the service decide so new models need no upgrade.
    Raises :class:`ParameterError` with ``parameter_not_provided`` or
    ``parameter_invalid`` naming the parameter.
    """
    if not model_name:
        raise not_provided("model_name")
    if not has_file and not video_url:
        raise not_provided("video_file")
    if known_models is not None and model_name not in set(known_models):
        raise invalid("model_name", f"model_name should be one of {', '.join(MODELS)}.")
    if video_url is not None and not video_url.lower().startswith(("http://", "https://")):
        raise invalid("video_url", "video_url should be an http or https URL.")
    if not MIN_CLIP_LENGTH <= clip_length <= MAX_CLIP_LENGTH:
        raise invalid("video_clip_length", "video_clip_length should be within 2-10 seconds long.")
    if start < 0:
        raise invalid("video_start_offset_sec", "video_start_offset_sec should be 0 or greater.")
    if end is not None:
        if end <= start:
            raise invalid(
                "video_end_offset_sec",
                "video_end_offset_sec should be greater than video_start_offset_sec.",
            )
        if end - start < clip_length:
            raise invalid(
                "video_end_offset_sec",
                "video_end_offset_sec - video_start_offset_sec should be at least "
                "video_clip_length.",
            )
    if not scopes:
        raise invalid("video_embedding_scope", "video_embedding_scope should not be empty.")
    for scope in scopes:
        if scope not in SCOPES:
            raise invalid(
                "video_embedding_scope", "video_embedding_scope should be 'clip' or 'video'."
            )
    return TaskParams(
        model_name=model_name,
        video_url=video_url,
        start=start,
        end=end,
        clip_length=clip_length,
        scopes=tuple(dict.fromkeys(scopes)),
    )


#: ``POST /embed``'s inputs, exactly one of which a request carries.
EMBED_INPUTS = ("text", "image_url", "image_file", "audio_url", "audio_file")


def check_embed_input(
    model_name: str | None,
    given: Sequence[str],
    *,
    known_models: Iterable[str] | None = None,
) -> str:
    """The one input field of a ``POST /embed`` request (``given``: the fields present,
    in :data:`EMBED_INPUTS` order), in the contract's precedence order.

    ``known_models`` as in :func:`check_task_params`. Raises :class:`ParameterError`.
    """
    if not model_name:
        raise not_provided("model_name")
    if not given:
        raise ParameterError(
            "One of the text, image_url, image_file, audio_url or audio_file parameters is "
            "required but none was provided.",
            code=ErrorCode.PARAMETER_NOT_PROVIDED,
        )
    if known_models is not None and model_name not in set(known_models):
        raise invalid("model_name", f"model_name should be one of {', '.join(MODELS)}.")
    if len(given) > 1:
        raise invalid(
            given[1],
            "Provide exactly one of text, image_url, image_file, audio_url or audio_file; "
            f"got {', '.join(given)}.",
        )
    return given[0]


def clip_spans(start: float, end: float, clip_length: float) -> list[tuple[float, float]]:
    """Clips tiling ``[start, end)``; a final remainder under 2 s is dropped, not merged."""
    spans: list[tuple[float, float]] = []
    t = start
    # Rounding keeps 0.1-style offsets from drifting across many clips.
    while end - t >= MIN_LAST_CLIP - 1e-9:
        stop = min(t + clip_length, end)
        spans.append((round(t, 6), round(stop, 6)))
        if stop >= end:
            break
        t = start + len(spans) * clip_length
    return spans
