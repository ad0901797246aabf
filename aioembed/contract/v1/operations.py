"""The v1 operations: one table the server mounts, the client follows and the document shows."""

from __future__ import annotations

from ...models import EmbedResponse, EmbedTask, TaskPage
from .._spec import ApiVersion, Operation, Param
from .forms import CREATE_TASK, EMBED
from .models import TaskCreated

__all__ = ["API", "PREFIX", "STATUSES"]

#: Every v1 path sits under this (the official SDK 1.3's base URL ends with it).
PREFIX = "/v1.3"
STATUSES = ("processing", "ready", "failed")

_TASK_ID = Param("task_id", where="path", pattern="^[0-9a-f]{24}$")

API = ApiVersion(
    prefix=PREFIX,
    title="TwelveLabs Embed API v1",
    description=(
        "The TwelveLabs Embed API v1 (video embedding tasks and sync embed) as the "
        "official twelvelabs SDK 1.3 speaks it."
    ),
    operations=(
        Operation(
            "create_task",
            "createEmbeddingTask",
            "POST",
            "/embed/tasks",
            "Create a video embedding task",
            response=TaskCreated,
            form=CREATE_TASK,
            params=(
                Param(
                    "Idempotency-Key",
                    where="header",
                    max_length=255,
                    description="[ext] repeat-safe create, per API key, 24 h",
                ),
            ),
            upload=True,
        ),
        Operation(
            "list_tasks",
            "listEmbeddingTasks",
            "GET",
            "/embed/tasks",
            "List video embedding tasks, newest first",
            response=TaskPage,
            params=(
                Param("page", "integer", default=1, minimum=1, maximum=1_000_000_000),
                Param("page_limit", "integer", default=10, minimum=1, maximum=50),
                Param("started_at", "datetime"),
                Param("ended_at", "datetime"),
                Param(
                    "status",
                    "choice",
                    repeated=True,
                    choices=STATUSES,
                    description="repeatable (or comma-separated) to match any of several",
                ),
            ),
        ),
        Operation(
            "task_status",
            "getEmbeddingTaskStatus",
            "GET",
            "/embed/tasks/{task_id}/status",
            "A task's status and metadata",
            response=EmbedTask,
            params=(_TASK_ID,),
            not_found=True,
        ),
        Operation(
            "retrieve_task",
            "retrieveVideoEmbeddings",
            "GET",
            "/embed/tasks/{task_id}",
            "A task with its segments once ready",
            response=EmbedTask,
            params=(_TASK_ID, Param("embedding_option", "choice", repeated=True)),
            not_found=True,
        ),
        Operation(
            "embed",
            "createEmbedding",
            "POST",
            "/embed",
            "Synchronous text / image / audio embedding",
            response=EmbedResponse,
            form=EMBED,
            upload=True,
        ),
        Operation(
            "metrics",
            "metrics",
            "GET",
            "/metrics",
            "[ext] Request counts by route, method and status since start",
        ),
        Operation(
            "health_v",
            "health",
            "GET",
            "/health",
            "[ext] Liveness (also at /health); no key needed",
            public=True,
        ),
        Operation(
            "openapi",
            "openapi",
            "GET",
            "/openapi.json",
            "This document; no key needed",
            public=True,
        ),
    ),
)
