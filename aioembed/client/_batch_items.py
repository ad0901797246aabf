"""What goes into ``embed_many`` (:class:`BatchItem`) and what comes out (:class:`Outcome`).

Both APIs share these: a path or URL becomes a :class:`BatchItem` either API can
embed, and an :class:`Outcome` carries the API's own task (``EmbedTask`` for v1,
:class:`~aioembed.v2.V2Task` for v2), so ``embed_many(..., api="v2")`` is typed
as precisely as the v1 call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Generic, Union

import attrs
from typing_extensions import TypeVar

from ..contract.v2 import TaskInput, V2Task
from ..errors import AioEmbedError
from ..models import EmbedTask, TaskStatus
from ._tasks import Scope

__all__ = ["BatchInput", "BatchItem", "Outcome", "TaskT"]

#: The task an outcome carries: v1's ``EmbedTask`` (the default) or v2's ``V2Task``.
TaskT = TypeVar("TaskT", EmbedTask, V2Task, default=EmbedTask)


@attrs.frozen
class BatchItem:
    """One input of a batch with its own parameters (``None`` = the batch's default).

    ``video_file`` / ``video_url`` and the offsets serve both APIs (v2 reads the
    offsets as ``start_sec`` / ``end_sec``). ``video_clip_length`` and
    ``video_embedding_scope`` are v1's; for v2 either set the batch's
    ``segmentation`` / ``embedding_scope`` or give ``task_input``, a complete
    :class:`~aioembed.v2.VideoInput` / ``AudioInput`` / ``ImageInput`` (its
    ``MediaSource.file`` goes up as base64, or as an asset when large).
    """

    video_file: str | os.PathLike[str] | None = None
    video_url: str | None = None
    video_start_offset_sec: float | None = None
    video_end_offset_sec: float | None = None
    video_clip_length: float | None = None
    video_embedding_scope: tuple[Scope, ...] | None = None
    #: The item's identity in a journal; defaults to its input and parameters.
    key: str | None = None
    #: A complete v2 input (``api="v2"`` only); the fields above must then be unset.
    task_input: TaskInput | None = None

    @classmethod
    def of(cls, value: BatchInput) -> BatchItem:
        if isinstance(value, BatchItem):
            return value
        if not isinstance(value, (str, os.PathLike)):
            return cls(task_input=value)
        text = os.fspath(value)
        if text.lower().startswith(("http://", "https://")):
            return cls(video_url=text)
        return cls(video_file=Path(text))

    @property
    def local_file(self) -> Path | None:
        """The local file this item reads, if any (a URL or asset reads none)."""
        if self.task_input is not None:
            return self.task_input.source.path
        if self.video_url is None and self.video_file is not None:
            return Path(self.video_file)
        return None

    @property
    def label(self) -> str:
        if self.task_input is not None:
            source = self.task_input.source
            if source.kind in ("url", "file"):
                return source.value
            if source.kind == "asset_id":
                return f"asset:{source.value}"
            return f"base64:{len(source.value)} chars"
        return self.video_url or os.fspath(self.video_file or "")


BatchInput = Union[str, "os.PathLike[str]", BatchItem, TaskInput]


@attrs.frozen
class Outcome(Generic[TaskT]):
    """What became of one input: exactly one per input, success or not.

    ``task`` is the finished task (with its vectors when ``ready``): an
    ``EmbedTask`` for v1, a :class:`~aioembed.v2.V2Task` for v2. ``error`` is a
    typed :class:`~aioembed.AioEmbedError` when the item did not succeed.
    ``resumed`` says the task id came from the journal (no upload this run);
    ``deduplicated`` that another item with the same content made the task.
    """

    index: int
    item: BatchItem
    task_id: str | None = None
    task: TaskT | None = None
    error: AioEmbedError | None = None
    resumed: bool = False
    deduplicated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.task is not None

    @property
    def status(self) -> TaskStatus | None:
        return self.task.status if self.task is not None else None
