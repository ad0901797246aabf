"""Embed API v2's routes (``/v1.3/embed-v2``): the table the server mounts from.

Paths are relative to :data:`PREFIX`. The bodies are the models and validator of
this package; the OpenAPI document still shows v1 only.
"""

from __future__ import annotations

from .._spec import ApiVersion, Operation, Param
from ..v1.operations import PREFIX as V1_PREFIX

__all__ = ["API", "PREFIX"]

PREFIX = V1_PREFIX + "/embed-v2"

_TASK_ID = Param("task_id", where="path", pattern="^[0-9a-f]{24}$")

API = ApiVersion(
    prefix=PREFIX,
    title="TwelveLabs Embed API v2",
    description="Embeddings of text, images, audio and video: synchronous, or as tasks.",
    operations=(
        Operation("v2.embed", "createEmbeddingV2", "POST", "", "Embed now (synchronous)"),
        Operation("v2.tasks.create", "createEmbeddingTaskV2", "POST", "/tasks", "Create a task"),
        Operation(
            "v2.tasks.list",
            "listEmbeddingTasksV2",
            "GET",
            "/tasks",
            "List tasks, newest first",
            params=(
                Param("page", "integer", default=1, minimum=1, maximum=1_000_000_000),
                Param("page_limit", "integer", default=10, minimum=1, maximum=50),
                Param("started_at", "datetime"),
                Param("ended_at", "datetime"),
                Param("status", repeated=True, choices=("processing", "ready", "failed")),
            ),
        ),
        Operation(
            "v2.tasks.retrieve",
            "retrieveEmbeddingTaskV2",
            "GET",
            "/tasks/{task_id}",
            "A task, with its embeddings once ready",
            params=(_TASK_ID,),
        ),
    ),
)
