"""The v1 bodies: the public models of :mod:`aioembed.models` plus the wire-only ones."""

from __future__ import annotations

import attrs

from ...models import (
    EmbedResponse,
    EmbedTask,
    MediaEmbedding,
    PageInfo,
    Segment,
    TaskError,
    TaskPage,
    TaskProgress,
    VideoEmbedding,
    VideoMetadata,
)

__all__ = [
    "EmbedResponse",
    "EmbedTask",
    "ErrorBody",
    "MediaEmbedding",
    "PageInfo",
    "Segment",
    "TaskCreated",
    "TaskError",
    "TaskPage",
    "TaskProgress",
    "VideoEmbedding",
    "VideoMetadata",
]


@attrs.frozen
class TaskCreated:
    """``POST /embed/tasks``: the new (or, for a repeated idempotency key, the original) id."""

    id: str


@attrs.frozen
class ErrorBody:
    """Every v1 error: ``{"code", "message"}`` plus [ext] ``request_id``."""

    code: str
    message: str
    request_id: str | None = None
