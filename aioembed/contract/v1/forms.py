"""The v1 request forms: field names written once, the client's encoder, the server's reader.

``encode_*`` build the text fields a client sends (numbers as text, the way the
official SDK writes them); ``read_*`` apply the contract's rules to a received
form in its precedence order. Both sides validate with :mod:`aioembed._params`,
so a bad request gets the same code and message whichever end catches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ..._params import (
    DEFAULT_CLIP_LENGTH,
    SCOPES,
    TaskParams,
    check_task_params,
    invalid,
    not_provided,
    parse_number,
)
from .._spec import Field, FormSpec, format_number

__all__ = [
    "CREATE_TASK",
    "EMBED",
    "FormFields",
    "encode_create_task",
    "encode_embed",
    "read_audio_offset",
    "read_task_params",
]

_NUMBER = "a number written as text, e.g. 6 or 12.5"

CREATE_TASK = FormSpec(
    (
        Field("model_name", "choice", required=True),
        Field("video_url", "uri", description="http(s) URL of a raw video file"),
        Field("video_start_offset_sec", "number", description=_NUMBER),
        Field("video_end_offset_sec", "number", description=_NUMBER),
        Field("video_clip_length", "number", description=f"2-10, default {DEFAULT_CLIP_LENGTH:g}"),
        Field("video_embedding_scope", "choice", repeated=True, choices=SCOPES),
        Field("video_file", "file", description="the video; if video_url is given too, it wins"),
    )
)
EMBED = FormSpec(
    (
        Field("model_name", "choice", required=True),
        Field("text", "text"),
        Field("image_url", "uri"),
        Field("audio_url", "uri"),
        Field("audio_start_offset_sec", "number", description=_NUMBER),
        Field("image_file", "file"),
        Field("audio_file", "file"),
    )
)


class FormFields(Protocol):
    """A received form as the readers need it (the server's ``Form``)."""

    def get(self, name: str) -> str | None:
        """The single value of ``name`` (``None`` if absent); a repeat is refused."""
        ...

    def values(self, name: str) -> list[str]:
        """Every value of a repeated field, in arrival order."""
        ...


def _numbers(pairs: Iterable[tuple[str, float | None]]) -> list[tuple[str, str]]:
    return [(name, format_number(value)) for name, value in pairs if value is not None]


def encode_create_task(
    model_name: str,
    *,
    video_url: str | None = None,
    start: float | None = None,
    end: float | None = None,
    clip_length: float | None = None,
    scopes: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """The text fields of a create request (the file part, if any, goes last)."""
    fields = [("model_name", model_name)]
    if video_url is not None:
        fields.append(("video_url", video_url))
    fields += _numbers(
        (
            ("video_start_offset_sec", start),
            ("video_end_offset_sec", end),
            ("video_clip_length", clip_length),
        )
    )
    fields += [("video_embedding_scope", s) for s in scopes or ()]
    return fields


def encode_embed(
    model_name: str, *, audio_start_offset_sec: float | None = None
) -> list[tuple[str, str]]:
    """The text fields of ``POST /embed`` before its one input."""
    return [
        ("model_name", model_name),
        *_numbers((("audio_start_offset_sec", audio_start_offset_sec),)),
    ]


def _optional(form: FormFields, name: str) -> str | None:
    """A single text field, with an empty value treated as absent (``curl -F x=``)."""
    return form.get(name) or None


def read_task_params(
    form: FormFields, *, has_file: bool, known_models: Iterable[str]
) -> TaskParams:
    """A create form's rules in the contract's precedence (unknown names are refused
    while reading); raises :class:`~aioembed.ParameterError`."""
    model_name = _optional(form, "model_name")
    video_url = _optional(form, "video_url")
    if not model_name:
        raise not_provided("model_name")
    if not has_file and not video_url:
        raise not_provided("video_file")
    start_text = _optional(form, "video_start_offset_sec")
    end_text = _optional(form, "video_end_offset_sec")
    clip_text = _optional(form, "video_clip_length")
    known = tuple(known_models)
    if model_name not in known:
        # Checked before the numbers so a wrong model is named first.
        check_task_params(model_name, has_file=has_file, video_url=video_url, known_models=known)
    start = parse_number("video_start_offset_sec", start_text) if start_text else 0.0
    end = parse_number("video_end_offset_sec", end_text) if end_text else None
    clip = parse_number("video_clip_length", clip_text) if clip_text else DEFAULT_CLIP_LENGTH
    scopes = [s for s in form.values("video_embedding_scope") if s] or ["clip"]
    return check_task_params(
        model_name,
        start=start,
        end=end,
        clip_length=clip,
        scopes=scopes,
        has_file=has_file,
        video_url=video_url,
        known_models=known,
    )


def read_audio_offset(form: FormFields, source: str) -> float:
    """``audio_start_offset_sec``: 0 or more, and only next to an audio input."""
    text = _optional(form, "audio_start_offset_sec")
    offset = parse_number("audio_start_offset_sec", text) if text else 0.0
    if offset < 0:
        raise invalid("audio_start_offset_sec", "audio_start_offset_sec should be 0 or greater.")
    if text and source not in ("audio_url", "audio_file"):
        raise invalid(
            "audio_start_offset_sec", "audio_start_offset_sec applies only to audio inputs."
        )
    return offset
