"""The OpenAPI 3.1 description of what this server serves (``GET /v1.3/openapi.json``)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from .._params import MODELS
from ._config import ServerConfig

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "500": {"$ref": "#/components/responses/InternalError"},
}
_NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
_TASK_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
}
_NUMBER_TEXT = {"type": "string", "description": "a number written as text, e.g. 6 or 12.5"}


def openapi_document(config: ServerConfig) -> dict[str, Any]:
    models = list(MODELS)
    options = sorted({o for m in MODELS.values() for o in m.video_options})
    limits = config.media_limits
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aioembed local embed server",
            "version": __version__,
            "description": (
                "The TwelveLabs Embed API v1 (video embedding tasks and sync embed) as the "
                "official twelvelabs SDK 1.3 speaks it, served by a local engine. Vectors are "
                "the local engine's, not TwelveLabs'. Operations marked [ext] are aioembed "
                "extensions."
            ),
        },
        "servers": [{"url": "/v1.3"}],
        "security": [{"ApiKey": []}],
        "paths": {
            "/embed/tasks": {
                "post": {
                    "operationId": "createEmbeddingTask",
                    "summary": "Create a video embedding task",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "[ext] repeat-safe create, per API key, 24 h",
                            "schema": {"type": "string", "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": _ref("CreateTaskForm")}},
                    },
                    "responses": {
                        "200": _json(_ref("TaskCreated"), "The task was accepted (durably)."),
                        "413": {"$ref": "#/components/responses/TooLarge"},
                        **_ERRORS,
                    },
                },
                "get": {
                    "operationId": "listEmbeddingTasks",
                    "summary": "List video embedding tasks, newest first",
                    "parameters": [
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "default": 1},
                        },
                        {
                            "name": "page_limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 50,
                                "default": 10,
                            },
                        },
                        {
                            "name": "started_at",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "ended_at",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "status",
                            "in": "query",
                            "description": "repeatable (or comma-separated) to match any of several",
                            "schema": {"type": "array", "items": _ref("Status")},
                            "style": "form",
                            "explode": True,
                        },
                    ],
                    "responses": {"200": _json(_ref("TaskList"), "A page of tasks."), **_ERRORS},
                },
            },
            "/embed/tasks/{task_id}/status": {
                "get": {
                    "operationId": "getEmbeddingTaskStatus",
                    "summary": "A task's status and metadata",
                    "parameters": [_TASK_ID],
                    "responses": {"200": _json(_ref("Task"), "The task."), **_ERRORS, **_NOT_FOUND},
                }
            },
            "/embed/tasks/{task_id}": {
                "get": {
                    "operationId": "retrieveVideoEmbeddings",
                    "summary": "A task with its segments once ready",
                    "parameters": [
                        _TASK_ID,
                        {
                            "name": "embedding_option",
                            "in": "query",
                            "schema": {
                                "type": "array",
                                "items": {"type": "string", "enum": options},
                            },
                            "style": "form",
                            "explode": True,
                        },
                    ],
                    "responses": {"200": _json(_ref("Task"), "The task."), **_ERRORS, **_NOT_FOUND},
                }
            },
            "/embed": {
                "post": {
                    "operationId": "createEmbedding",
                    "summary": "Synchronous text / image / audio embedding",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": _ref("EmbedForm")}},
                    },
                    "responses": {
                        "200": _json(_ref("EmbedResponse"), "The embedding."),
                        "413": {"$ref": "#/components/responses/TooLarge"},
                        **_ERRORS,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "[ext] Request counts by route, method and status since start",
                    "responses": {"200": _json({"type": "object"}, "Counters."), **_ERRORS},
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "[ext] Liveness (also at /health); no key needed",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "Alive.")},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document; no key needed",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
                }
            },
        },
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "responses": {
                "BadRequest": _json(_ref("Error"), "parameter_* or video_* error."),
                "Unauthorized": _json(_ref("Error"), "api_key_invalid."),
                "NotFound": _json(_ref("Error"), "resource_not_exist."),
                "TooLarge": _json(_ref("Error"), "video_filesize_too_large."),
                "TooManyRequests": _json(_ref("Error"), "too_many_requests; see Retry-After."),
                "InternalError": _json(_ref("Error"), "internal_error (a bug)."),
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "Status": {"type": "string", "enum": ["processing", "ready", "failed"]},
                "CreateTaskForm": {
                    "type": "object",
                    "required": ["model_name"],
                    "properties": {
                        "model_name": {"type": "string", "enum": models},
                        "video_file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"at most {config.max_upload_bytes} bytes; "
                            f"{limits.min_duration:g}-{limits.max_duration:g} s, "
                            f"{limits.min_width}x{limits.min_height}-"
                            f"{limits.max_width}x{limits.max_height}",
                        },
                        "video_url": {"type": "string", "format": "uri"},
                        "video_start_offset_sec": _NUMBER_TEXT,
                        "video_end_offset_sec": _NUMBER_TEXT,
                        "video_clip_length": {**_NUMBER_TEXT, "description": "2-10, default 6"},
                        "video_embedding_scope": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["clip", "video"]},
                        },
                    },
                },
                "TaskCreated": {
                    "type": "object",
                    "required": ["_id"],
                    "properties": {"_id": {"type": "string"}},
                },
                "Segment": {
                    "type": "object",
                    "properties": {
                        "float": {"type": "array", "items": {"type": "number"}},
                        "start_offset_sec": {"type": "number"},
                        "end_offset_sec": {"type": "number"},
                        "embedding_scope": {"type": "string"},
                        "embedding_option": {"type": "string"},
                    },
                },
                "Task": {
                    "type": "object",
                    "properties": {
                        "_id": {"type": "string"},
                        "model_name": {"type": "string"},
                        "status": _ref("Status"),
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "video_embedding": {
                            "type": "object",
                            "properties": {
                                "metadata": {"type": "object"},
                                "segments": {"type": "array", "items": _ref("Segment")},
                            },
                        },
                        "error": {"description": "[ext] when failed", **_ref("Error")},
                        "progress": {
                            "description": "[ext] while processing",
                            "type": "object",
                            "properties": {
                                "clips_done": {"type": "integer"},
                                "clips_total": {"type": "integer"},
                            },
                        },
                    },
                },
                "TaskList": {
                    "type": "object",
                    "properties": {
                        "data": {"type": "array", "items": _ref("Task")},
                        "page_info": {
                            "type": "object",
                            "properties": {
                                "limit_per_page": {"type": "integer"},
                                "page": {"type": "integer"},
                                "total_page": {"type": "integer"},
                                "total_results": {"type": "integer"},
                            },
                        },
                    },
                },
                "EmbedForm": {
                    "type": "object",
                    "required": ["model_name"],
                    "properties": {
                        "model_name": {"type": "string", "enum": models},
                        "text": {"type": "string"},
                        "image_url": {"type": "string", "format": "uri"},
                        "image_file": {"type": "string", "format": "binary"},
                        "audio_url": {"type": "string", "format": "uri"},
                        "audio_file": {"type": "string", "format": "binary"},
                        "audio_start_offset_sec": _NUMBER_TEXT,
                    },
                },
                "EmbedResponse": {
                    "type": "object",
                    "required": ["model_name"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "text_embedding": {"type": "object"},
                        "image_embedding": {"type": "object"},
                        "audio_embedding": {"type": "object"},
                    },
                },
            },
        },
    }
