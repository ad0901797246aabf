"""Stored records -> the contract's JSON shapes (as plain dicts for ``_wire.dumps``).

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

from .._wire import dumps, format_datetime
from ..errors import APIStatusError, ErrorCode
from ._store import SegmentRecord, TaskRecord

__all__ = [
    "error_response",
    "json_response",
    "new_request_id",
    "render_segments",
    "render_task",
    "rfc3339",
]


def rfc3339(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, tz=UTC))


def new_request_id() -> str:
    return uuid.uuid4().hex


def error_response(exc: APIStatusError, request_id: str) -> web.Response:
    """The contract's error body (plus ``request_id``) with the error's status and headers."""
    body = exc.to_body()
    body["request_id"] = request_id
    resp = json_response(body, status=exc.status)
    resp.headers.update(exc.headers)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(body), status=status, content_type="application/json", headers=headers
    )


def render_metadata(rec: TaskRecord, options: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "input_url": rec.input_url,
        "input_filename": rec.input_filename,
        "video_clip_length": rec.clip_length,
        "video_embedding_scope": list(rec.scopes),
        "video_embedding_option": list(rec.options if options is None else options),
        "duration": rec.duration,
    }


def render_task(
    rec: TaskRecord,
    *,
    progress: tuple[int, int] | None = None,
    options: Sequence[str] | None = None,
    segments: Sequence[SegmentRecord] | None = None,
) -> dict[str, Any]:
    """A task as status, retrieve and list show it.

    ``progress`` ([ext]) overrides the stored one (it is fresher); ``segments``
    are added only for retrieve on a ``ready`` task.
    """
    embedding: dict[str, Any] = {"metadata": render_metadata(rec, options)}
    if segments is not None:
        embedding["segments"] = render_segments(segments)
    out: dict[str, Any] = {
        "_id": rec.id,
        "model_name": rec.model_name,
        "status": rec.status,
        "created_at": rfc3339(rec.created_at),
        "updated_at": rfc3339(rec.updated_at),
        "video_embedding": embedding,
    }
    if rec.status == "failed":
        out["error"] = {
            "code": rec.error_code or ErrorCode.INTERNAL_ERROR,
            "message": rec.error_message or "The task failed.",
        }
    elif rec.status == "processing":
        if progress is None and rec.clips_total is not None:
            progress = (rec.clips_done or 0, rec.clips_total)
        if progress is not None:
            out["progress"] = {"clips_done": progress[0], "clips_total": progress[1]}
    return out


def render_segments(segments: Sequence[SegmentRecord]) -> list[dict[str, Any]]:
    return [
        {
            "float": np.frombuffer(s.vector, dtype="<f4"),
            "start_offset_sec": s.start,
            "end_offset_sec": s.end,
            "embedding_scope": s.scope,
            "embedding_option": s.option,
        }
        for s in segments
    ]
