"""Stored records -> the v1 models -> JSON, through the converter the client parses with.

Vectors stay NumPy float32 views of the stored bytes; orjson writes them
natively, so retrieving thousands of segments never builds Python floats.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import web

from .._wire import dumps
from ..contract import v1
from ..errors import APIStatusError, ErrorCode
from ..models import TaskStatus
from ._store import SegmentRecord, TaskRecord

__all__ = [
    "error_response",
    "json_response",
    "model_response",
    "new_request_id",
    "segment_models",
    "task_model",
]


def new_request_id() -> str:
    return uuid.uuid4().hex


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body), status=status, content_type="application/json", headers=headers
    )


def model_response(
    model: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A contract model as its JSON body."""
    return json_response(v1.unstructure(model), status=status, headers=headers)


def error_response(exc: APIStatusError, request_id: str) -> web.Response:
    """The contract's error body (plus ``request_id``) with the error's status and headers."""
    body = v1.ErrorBody(code=str(exc.code), message=exc.message, request_id=request_id)
    resp = model_response(body, status=exc.status)
    resp.headers.update(exc.headers)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def task_model(
    rec: TaskRecord,
    *,
    progress: tuple[int, int] | None = None,
    options: Sequence[str] | None = None,
    segments: Sequence[SegmentRecord] | None = None,
) -> v1.EmbedTask:
    """A task as status, retrieve and list show it.

    ``progress`` ([ext]) overrides the stored one (it is fresher); ``segments``
    are added only for retrieve on a ``ready`` task.
    """
    metadata = v1.VideoMetadata(
        input_url=rec.input_url,
        input_filename=rec.input_filename,
        video_clip_length=rec.clip_length,
        video_embedding_scope=list(rec.scopes),
        video_embedding_option=list(rec.options if options is None else options),
        duration=rec.duration,
    )
    status = TaskStatus(rec.status)
    error = shown_progress = None
    if status is TaskStatus.FAILED:
        error = v1.TaskError(
            code=str(rec.error_code or ErrorCode.INTERNAL_ERROR),
            message=rec.error_message or "The task failed.",
        )
    elif status is TaskStatus.PROCESSING:
        if progress is None and rec.clips_total is not None:
            progress = (rec.clips_done or 0, rec.clips_total)
        if progress is not None:
            shown_progress = v1.TaskProgress(clips_done=progress[0], clips_total=progress[1])
    return v1.EmbedTask(
        id=rec.id,
        status=status,
        model_name=rec.model_name,
        created_at=_time(rec.created_at),
        updated_at=_time(rec.updated_at),
        video_embedding=v1.VideoEmbedding(
            metadata=metadata,
            segments=None if segments is None else segment_models(segments),
        ),
        error=error,
        progress=shown_progress,
    )


def segment_models(segments: Sequence[SegmentRecord]) -> list[v1.Segment]:
    return [
        v1.Segment(
            vector=np.frombuffer(s.vector, dtype="<f4"),  # type: ignore[arg-type]
            start_offset_sec=s.start,
            end_offset_sec=s.end,
            embedding_scope=s.scope,
            embedding_option=s.option,
        )
        for s in segments
    ]
