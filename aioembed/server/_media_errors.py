"""Engine errors in the wire's words: which request parameter a media error is about.

The engine names its own inputs (:class:`~aioembed.engine.MediaField`: the
media, its start or end offset), never a form field; the HTTP layer knows which
parameter carried the media (``video_file``, ``image_url``, ``audio_file``...)
and maps the field to the parameter the client sent, so the message reads
"The audio_start_offset_sec parameter is invalid. ..." without anyone matching
message text.
"""

from __future__ import annotations

from .._params import invalid
from ..engine._media import MediaField
from ..errors import ErrorCode, ParameterError
from ._workers import JobError

__all__ = ["sync_embed_error", "task_message", "wire_param"]

_OFFSETS = {
    ("video", MediaField.START_OFFSET): "video_start_offset_sec",
    ("video", MediaField.END_OFFSET): "video_end_offset_sec",
    ("audio", MediaField.START_OFFSET): "audio_start_offset_sec",
}


def wire_param(source: str, field: str) -> str:
    """The parameter an error about ``field`` names, for media sent as ``source``."""
    kind = source.partition("_")[0]  # video_file -> video, audio_url -> audio
    return _OFFSETS.get((kind, MediaField(field)), source)


def task_message(err: JobError, source: str = "video_file") -> str:
    """A failed task's message: an offset the engine rejects is named as its parameter;
    media codes (and errors already in the wire's words) keep their message."""
    if err.field in (None, MediaField.MEDIA) or err.code != ErrorCode.PARAMETER_INVALID:
        return err.message
    assert err.field is not None
    return invalid(wire_param(source, err.field), err.message).message


def sync_embed_error(err: JobError, source: str) -> ParameterError:
    """``POST /embed``: a media problem is ``400 parameter_invalid`` naming the parameter
    it is about; a job error without a field is already in the wire's words."""
    if err.field is None:
        return ParameterError(err.message, code=err.code)
    return invalid(wire_param(source, err.field), err.message)
