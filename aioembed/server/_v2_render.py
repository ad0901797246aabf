"""Stored v2 tasks -> the contract's models (:mod:`aioembed.contract.v2`), rendered by the
same converter the SDK parses with.

The official SDK's strictness traps are met here: ``metadata`` always carries
``input_type`` (and, for video/audio, ``duration``, options and scopes, so it is
only sent once the duration is known); ``error`` is sent only for ``failed``
tasks and always has a ``message``; every ``data`` item has ``embedding``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import attrs
import numpy as np

from ..contract.v2 import (
    AudioMetadata,
    EmbeddingItem,
    EmbedSpec,
    ImageMetadata,
    MediaMetadata,
    MultiInputMetadata,
    TaskCreated,
    TaskSpec,
    TaskSummary,
    TaskSummaryEmbedding,
    Usage,
    V2Task,
    V2TaskError,
    VideoMetadata,
    converter,
    spec_from_json,
)
from ..contract.v2._models import TaskCreatedMetadata
from ..models import TaskStatus
from ._store import SegmentRecord, TaskRecord

__all__ = [
    "EXPIRED",
    "created_body",
    "expired",
    "sync_metadata",
    "task_body",
    "task_spec",
    "task_summary_body",
    "vector",
]


def task_spec(rec: TaskRecord) -> TaskSpec:
    assert rec.spec is not None
    spec: TaskSpec = spec_from_json(json.loads(rec.spec), TaskSpec)
    return spec


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def created_body(rec_id: str, spec: TaskSpec) -> dict[str, Any]:
    meta = (
        TaskCreatedMetadata(spec.embedding_dimension) if spec.model_name == "marengo3.5" else None
    )
    body: dict[str, Any] = converter().unstructure(TaskCreated(rec_id, TaskStatus.PROCESSING, meta))
    return body


def metadata(rec: TaskRecord, spec: TaskSpec) -> MediaMetadata | None:
    media = spec.media
    dim = spec.embedding_dimension if spec.model_name == "marengo3.5" else None
    common: dict[str, Any] = {
        "input_type": media.input_type,
        "input_url": rec.input_url,
        "input_filename": rec.input_filename,
        "embedding_options": list(media.options),
        "embedding_scopes": list(media.scopes),
        "embedding_dimension": dim,
    }
    if media.input_type in ("image", "document"):
        return ImageMetadata(**common)
    if rec.duration is None:
        return None  # the SDK requires duration on video/audio metadata
    end = rec.duration if media.end is None else min(media.end, rec.duration)
    timing: dict[str, Any] = {
        "duration": rec.duration,
        "start_offset_sec": media.start,
        "end_offset_sec": end,
    }
    if media.input_type == "audio":
        return AudioMetadata(**common, **timing)
    seg = media.segmentation
    clip = seg.seconds if seg is not None and seg.strategy == "fixed" else None
    return VideoMetadata(**common, **timing, clip_length=clip)


def vector(data: bytes) -> Sequence[float]:
    """Stored float32 bytes as the array the converter passes through (no Python floats)."""
    return cast(Sequence[float], np.frombuffer(data, dtype="<f4"))


def items(spec: TaskSpec, segments: Sequence[SegmentRecord]) -> list[EmbeddingItem]:
    timed = spec.media.input_type in ("video", "audio")
    return [
        EmbeddingItem(
            embedding=vector(s.vector),
            embedding_uncertainty=None if s.uncertainty is None else vector(s.uncertainty),
            embedding_option=s.option,
            embedding_scope=s.scope,
            start_sec=s.start if timed else None,
            end_sec=s.end if timed else None,
        )
        for s in segments
    ]


EXPIRED = "The embedding result is no longer available and cannot be retrieved."


def expired(rec: TaskRecord, retention: float) -> TaskRecord:
    """``rec``, or past its retention a ``failed`` copy saying the result is gone."""
    if rec.status != "ready" or time.time() - rec.updated_at <= retention:
        return rec
    return attrs.evolve(rec, status="failed", error_code=None, error_message=EXPIRED)


def task_body(rec: TaskRecord, segments: Sequence[SegmentRecord] | None = None) -> dict[str, Any]:
    """``GET /embed-v2/tasks/{id}``; ``segments`` only for a ``ready`` task."""
    spec = task_spec(rec)
    usage = None
    if rec.result_meta is not None:
        raw = json.loads(rec.result_meta).get("usage")
        usage = Usage(**raw) if raw else None
    error = None
    if rec.status == "failed":
        error = V2TaskError(rec.error_message or "The embedding task failed.", rec.error_code)
    task = V2Task(
        id=rec.id,
        status=TaskStatus(rec.status),
        created_at=_time(rec.created_at),
        updated_at=_time(rec.updated_at),
        data=items(spec, segments) if segments is not None else None,
        metadata=metadata(rec, spec),
        usage=usage,
        error=error,
    )
    body: dict[str, Any] = converter().unstructure(task)
    body["data"] = body.get("data")  # null until ready, as the contract shows
    return body


def _v1_metadata(rec: TaskRecord, spec: TaskSpec) -> tuple[str, dict[str, Any]]:
    """The list item's v1-shaped ``<input_type>_embedding.metadata`` (v1 names)."""
    media = spec.media
    kind = media.input_type
    out: dict[str, Any] = {"input_url": rec.input_url, "input_filename": rec.input_filename}
    options, scopes = list(media.options), list(media.scopes)
    if kind == "video":
        seg = media.segmentation
        out["video_clip_length"] = (
            seg.seconds if seg is not None and seg.strategy == "fixed" else None
        )
        out |= {"video_embedding_scope": scopes, "video_embedding_option": options}
        out["duration"] = rec.duration
    elif kind == "audio":
        out |= {"audio_embedding_option": options, "audio_embedding_scope": scopes}
        out |= {
            "duration": rec.duration,
            "start_offset_sec": media.start,
            "end_offset_sec": media.end,
        }
    else:
        out |= {f"{kind}_embedding_option": options, f"{kind}_embedding_scope": scopes}
    return f"{kind}_embedding", {k: v for k, v in out.items() if v is not None}


def task_summary_body(rec: TaskRecord) -> dict[str, Any]:
    """A ``GET /embed-v2/tasks`` item: v1-shaped, no vectors; [ext] ``input_type``,
    v2 ``metadata`` and ``error``."""
    spec = task_spec(rec)
    field, meta = _v1_metadata(rec, spec)
    error = None
    if rec.status == "failed":
        error = V2TaskError(rec.error_message or "The embedding task failed.", rec.error_code)
    summary = TaskSummary(
        id=rec.id,
        status=TaskStatus(rec.status),
        model_name=rec.model_name,
        created_at=_time(rec.created_at),
        updated_at=_time(rec.updated_at),
        input_type=spec.input_type,
        metadata=metadata(rec, spec),
        error=error,
        **{field: TaskSummaryEmbedding(meta)},
    )
    body: dict[str, Any] = converter().unstructure(summary)
    return body


def sync_metadata(
    spec: EmbedSpec, duration: float | None, input_url: str | None
) -> MediaMetadata | None:
    """``POST /embed-v2``'s ``metadata``: none for text (the SDK's union has no text
    variant), the image's source for image/text_image, as tasks for audio/video."""
    dim = spec.embedding_dimension if spec.model_name == "marengo3.5" else None
    if spec.input_type == "text":
        return None
    if spec.input_type == "multi_input":
        return MultiInputMetadata(input_type="multi_input", embedding_dimension=dim)
    if spec.input_type in ("image", "text_image"):
        return ImageMetadata(input_type=spec.input_type, input_url=input_url)
    media = spec.media
    assert media is not None and duration is not None
    end = duration if media.end is None else min(media.end, duration)
    common: dict[str, Any] = {
        "input_type": media.input_type,
        "input_url": input_url,
        "embedding_options": list(media.options),
        "embedding_scopes": list(media.scopes),
        "duration": duration,
        "start_offset_sec": media.start,
        "end_offset_sec": end,
    }
    if media.input_type == "audio":
        return AudioMetadata(**common)
    seg = media.segmentation
    clip = seg.seconds if seg is not None and seg.strategy == "fixed" else None
    return VideoMetadata(**common, clip_length=clip)
