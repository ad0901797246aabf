"""The v1 converter: models <-> the JSON the contract writes.

Wire names differ from attribute names in two places (``_id`` and ``float``).
Unknown keys are tolerated, so a newer server never breaks an older client.
Vectors pass through as they are (the client's parser already made them float32
arrays; the server hands over views of the stored bytes), because structuring
7,000 x 1,024 floats one by one would cost more than parsing them. Keys whose
value is absent are left out where the contract leaves them out (a segment's
offsets for text, ``error`` on a task that has not failed), and written as
``null`` where it writes them (a video's ``metadata``).
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import cattrs

from .._convert import configure_converter as configure_common
from .._convert import register_renamed
from .models import (
    EmbedResponse,
    EmbedTask,
    ErrorBody,
    MediaEmbedding,
    Segment,
    TaskCreated,
    VideoEmbedding,
)

__all__ = [
    "RENAMES",
    "configure_converter",
    "converter",
    "make_converter",
    "structure",
    "unstructure",
]

T = TypeVar("T")

#: The order the contract (and the official SDK's examples) write a task's keys in.
_TASK_KEYS = (
    "_id",
    "model_name",
    "status",
    "created_at",
    "updated_at",
    "video_embedding",
    "error",
    "progress",
)


#: Attribute -> wire name, per model (the OpenAPI document reads it too).
RENAMES: dict[type, dict[str, str]] = {
    Segment: {"vector": "float"},
    EmbedTask: {"id": "_id"},
    TaskCreated: {"id": "_id"},
}


def configure_converter(converter: cattrs.Converter) -> None:
    """Add the v1 hooks to ``converter``.

    Leaves first: a generated hook binds the hooks of the models it nests when it is made.
    """
    configure_common(converter)
    register_renamed(converter, Segment, omit_none=True, raw=("vector",), renames=RENAMES[Segment])
    for cls in (VideoEmbedding, MediaEmbedding, ErrorBody):
        register_renamed(converter, cls, omit_none=True)
    register_renamed(converter, EmbedResponse, omit_none=True)
    register_renamed(
        converter, EmbedTask, omit_none=True, order=_TASK_KEYS, renames=RENAMES[EmbedTask]
    )
    register_renamed(converter, TaskCreated, renames=RENAMES[TaskCreated])


def make_converter() -> cattrs.Converter:
    """A new converter speaking v1."""
    converter = cattrs.Converter(omit_if_default=False)
    configure_converter(converter)
    return converter


@functools.cache
def converter() -> cattrs.Converter:
    """The shared v1 converter, made on first use (hooks are not thread-unsafe to read)."""
    return make_converter()


def structure(data: Any, cls: type[T]) -> T:
    """Wire JSON (already parsed) -> model; raises ``cattrs`` errors on a bad shape."""
    return converter().structure(data, cls)


def unstructure(obj: Any) -> Any:
    """Model -> JSON-ready data (vectors stay arrays; ``_wire.dumps`` writes them)."""
    return converter().unstructure(obj)
