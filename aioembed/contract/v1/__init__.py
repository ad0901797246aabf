"""Embed API v1 (``/v1.3``): operations, forms, models and the converter.

Import what you need from here::

    from aioembed.contract import v1
    v1.PREFIX, v1.API.operation("task_status").path, v1.structure(data, v1.EmbedTask)
"""

from __future__ import annotations

from .convert import RENAMES, configure_converter, converter, make_converter, structure, unstructure
from .forms import CREATE_TASK, EMBED, encode_create_task, encode_embed
from .models import (
    EmbedResponse,
    EmbedTask,
    ErrorBody,
    MediaEmbedding,
    PageInfo,
    Segment,
    TaskCreated,
    TaskError,
    TaskPage,
    TaskProgress,
    VideoEmbedding,
    VideoMetadata,
)
from .operations import API, PREFIX, STATUSES

__all__ = [
    "API",
    "CREATE_TASK",
    "EMBED",
    "PREFIX",
    "RENAMES",
    "STATUSES",
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
    "configure_converter",
    "converter",
    "encode_create_task",
    "encode_embed",
    "make_converter",
    "structure",
    "unstructure",
]
