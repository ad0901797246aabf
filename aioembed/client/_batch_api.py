"""The two APIs ``embed_many`` speaks: how an item becomes a task, and how tasks are watched.

:mod:`._batch` runs a batch the same way whichever the API (the window, the
journal, dedupe, one shared :class:`~._watch.StatusWatcher`); an adapter here
supplies what differs: the item's identity (dedupe and journal key), the create
call, the processing tasks the watcher pages through, the individual fetch,
and the finished task the outcome carries. The watcher speaks v1's task model,
so the v2 adapter hands it the v2 list items and tasks in that shape (id,
status, error) and keeps the real :class:`~aioembed.v2.V2Task`, vectors
included, for the outcome.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal, Protocol

import anyio
import attrs

from .._params import DEFAULT_CLIP_LENGTH
from ..contract.v2 import (
    MediaSource,
    ModelName,
    TaskInput,
    V2Task,
    V2TaskPage,
    VideoInput,
    check_task_body,
    invalid,
    task_body,
)
from ..contract.v2._inputs import Segmentation
from ..errors import NotFoundError
from ..models import EmbedTask, TaskPage
from ._assets import Assets
from ._batch_items import BatchItem, TaskT
from ._defaults import DEFAULT_SCOPES
from ._pacing import Pacer
from ._paging import walk_pages
from ._tasks import Scope, TaskCalls
from ._upload import ProgressCallback
from ._v2_media import inline_limit, resolve_files
from ._v2_tasks import EmbedV2Tasks
from ._v2_watch import _as_v1
from ._watch import PAGE_LIMIT

__all__ = ["ApiName", "BatchApi", "CreateContext", "V1Api", "V2Api"]

#: The ``api`` argument of ``embed_many``.
ApiName = Literal["v1", "v2"]
#: The media a v2 batch's settings are checked and keyed with: a URL never fetched.
_PLACEHOLDER = MediaSource.url("https://example.com/batch-settings.mp4")


def _scopes(values: Sequence[Scope] | None) -> tuple[Scope, ...] | None:
    return tuple(values) if values else None


def _values(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Kept empty when given empty: v2 refuses that, and the check should say so."""
    return None if values is None else tuple(values)


@attrs.define(eq=False)
class CreateContext:
    """What the batch tells a create: its journaled key and asset, and where to report."""

    idempotency_key: str | None
    progress: ProgressCallback | None
    #: An asset an earlier run uploaded for this item (from the journal): reused if ready.
    asset_id: str | None = None
    #: Records an asset uploaded for this item (journal first, before the task exists).
    on_asset: Callable[[str], Awaitable[None]] | None = None


class BatchApi(Protocol[TaskT]):
    """What a batch needs from an API; see the module docstring."""

    name: ClassVar[ApiName]

    def identity(self, item: BatchItem) -> tuple[object, ...]:
        """The parameters that, with the content, decide the result (dedupe and journal
        key). Raises :class:`~aioembed.ParameterError` for an item this API cannot take."""
        ...

    async def create(self, item: BatchItem, ctx: CreateContext) -> str: ...

    def list_processing(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]: ...

    async def resolve(self, task_id: str) -> EmbedTask: ...

    def watching(self, task_id: str) -> None:
        """An item starts waiting for ``task_id`` (twins share one)."""
        ...

    def done_watching(self, task_id: str) -> None: ...

    def finished(self, task_id: str, task: EmbedTask) -> TaskT:
        """The task the outcome carries, once the watcher saw ``task`` terminal."""
        ...

    def duration(self, task: TaskT) -> float | None:
        """The media's duration (seconds) as the server reports it on the finished task."""
        ...


@attrs.define(eq=False, kw_only=True)
class V1Api:
    """``/embed/tasks``: multipart creates, ``retrieve`` (or ``status``) when done."""

    name: ClassVar[ApiName] = "v1"
    tasks: TaskCalls
    model_name: str
    clip_length: float | None
    scopes: tuple[Scope, ...] | None = attrs.field(converter=_scopes)
    options: tuple[str, ...] | None = attrs.field(converter=_values)
    retrieve: bool
    pacer: Pacer

    def identity(self, item: BatchItem) -> tuple[object, ...]:
        if item.task_input is not None:
            raise invalid("task_input", "task_input is a v2 input: pass api='v2' to embed_many.")
        return (
            self.model_name,
            item.video_start_offset_sec,
            item.video_end_offset_sec,
            item.video_clip_length or self.clip_length or DEFAULT_CLIP_LENGTH,
            ",".join(str(s) for s in item.video_embedding_scope or self.scopes or DEFAULT_SCOPES),
        )

    async def create(self, item: BatchItem, ctx: CreateContext) -> str:
        await self.pacer.request()
        handle = await self.tasks.create(
            self.model_name,
            video_file=item.video_file if item.video_url is None else None,
            video_url=item.video_url,
            video_start_offset_sec=item.video_start_offset_sec,
            video_end_offset_sec=item.video_end_offset_sec,
            video_clip_length=item.video_clip_length or self.clip_length,
            video_embedding_scope=item.video_embedding_scope or self.scopes,
            idempotency_key=ctx.idempotency_key,
            progress=ctx.progress,
        )
        return handle.id

    def list_processing(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
        async def fetch(page: int) -> TaskPage:
            await self.pacer.request()
            return await self.tasks.list_page(
                page=page, page_limit=PAGE_LIMIT, status="processing", started_at=since
            )

        return walk_pages(fetch)

    async def resolve(self, task_id: str) -> EmbedTask:
        await self.pacer.request()
        if self.retrieve:
            return await self.tasks.retrieve(task_id, embedding_option=self.options)
        return await self.tasks.status(task_id)

    def watching(self, task_id: str) -> None:
        pass

    def done_watching(self, task_id: str) -> None:
        pass

    def finished(self, task_id: str, task: EmbedTask) -> EmbedTask:
        return task

    def duration(self, task: EmbedTask) -> float | None:
        return task.metadata.duration if task.metadata is not None else None


@attrs.define(eq=False, kw_only=True)
class V2Api:
    """``/embed-v2/tasks``: JSON creates (small local files inline as base64), and the
    finished task retrieved once, with its vectors, when it leaves the processing list."""

    name: ClassVar[ApiName] = "v2"
    tasks: EmbedV2Tasks
    assets: Assets
    #: The client's upload slots: an inline file is read into memory, so few at once.
    uploads: anyio.CapacityLimiter
    model_name: ModelName | str
    segmentation: Segmentation | None
    options: tuple[str, ...] | None = attrs.field(converter=_values)
    scopes: tuple[str, ...] | None = attrs.field(converter=_values)
    dimension: int | None
    pacer: Pacer
    _finals: dict[str, V2Task] = attrs.field(init=False, factory=dict)
    _waiters: Counter[str] = attrs.field(init=False, factory=Counter)

    def __attrs_post_init__(self) -> None:
        """The batch's settings against the server's rules, before any request
        (:class:`~aioembed.ParameterError` with the server's code and message)."""
        body = task_body(
            self.model_name, self._video(_PLACEHOLDER), embedding_dimension=self.dimension
        )
        check_task_body(body)

    def _input(self, item: BatchItem) -> TaskInput:
        if item.task_input is not None:
            return item.task_input
        if item.video_clip_length is not None:
            raise invalid(
                "video_clip_length",
                "video_clip_length is a v1 parameter: with api='v2' set "
                "segmentation=Fixed(seconds).",
            )
        if item.video_embedding_scope is not None:
            raise invalid(
                "video_embedding_scope",
                "video_embedding_scope is a v1 parameter: with api='v2' set embedding_scope.",
            )
        if item.video_url is not None:
            source = MediaSource.url(item.video_url)
        else:
            source = MediaSource.file(item.video_file or "")
        return self._video(source, item.video_start_offset_sec, item.video_end_offset_sec)

    def _video(
        self, source: MediaSource, start: float | None = None, end: float | None = None
    ) -> VideoInput:
        return VideoInput(
            source,
            start_sec=start,
            end_sec=end,
            segmentation=self.segmentation,
            embedding_option=self.options,
            embedding_scope=self.scopes,
        )

    def identity(self, item: BatchItem) -> tuple[object, ...]:
        settings = attrs.evolve(self._input(item), source=_PLACEHOLDER)
        body = task_body(self.model_name, settings, embedding_dimension=self.dimension)
        return ("v2", json.dumps(body, sort_keys=True))

    async def create(self, item: BatchItem, ctx: CreateContext) -> str:
        """Inline files hold one of the client's upload slots while read and sent (they
        are in memory); larger ones go up as an asset first (:meth:`_asset`)."""
        task_input = self._input(item)
        path = task_input.source.path
        size = None if path is None else await _size(path, task_input.input_type)
        async with AsyncExitStack() as stack:
            if size is not None and size <= inline_limit(task_input.input_type):
                await stack.enter_async_context(self.uploads)
                _report(ctx.progress, 0, size)

            async def upload(file: Path, file_type: str) -> str:
                return await self._asset(file, file_type, ctx)

            resolved = await resolve_files(task_input, upload=upload)
            await self.pacer.request()
            handle = await self.tasks.create(
                resolved,  # type: ignore[arg-type]
                model_name=self.model_name,
                idempotency_key=ctx.idempotency_key,
                embedding_dimension=self.dimension,
            )
            if size is not None:
                _report(ctx.progress, size, size)
        return handle.id

    async def _asset(self, path: Path, file_type: str, ctx: CreateContext) -> str:
        """The journaled asset when it is still ``ready``, else a new upload (journaled
        before use, so a rerun never uploads it again)."""
        if ctx.asset_id is not None:
            try:
                await self.pacer.request()
                if (await self.assets.retrieve(ctx.asset_id)).status == "ready":
                    return ctx.asset_id
            except NotFoundError:
                pass  # deleted meanwhile: upload again
        await self.pacer.request()  # the upload's own status polls are not paced
        asset = await self.assets.upload(path, file_type=file_type, progress=ctx.progress)
        if ctx.on_asset is not None:
            await ctx.on_asset(asset.id)
        return asset.id

    async def list_processing(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
        async def fetch(page: int) -> V2TaskPage:
            await self.pacer.request()
            return await self.tasks.list_page(
                page=page, page_limit=PAGE_LIMIT, status="processing", started_at=since
            )

        async with aclosing(walk_pages(fetch)) as summaries:
            async for summary in summaries:
                yield _as_v1(summary)

    async def resolve(self, task_id: str) -> EmbedTask:
        await self.pacer.request()
        task = await self.tasks.retrieve(task_id)
        if task.status.is_terminal:
            self._finals[task_id] = task
        return _as_v1(task)

    def watching(self, task_id: str) -> None:
        self._waiters[task_id] += 1

    def done_watching(self, task_id: str) -> None:
        self._waiters[task_id] -= 1
        if self._waiters[task_id] <= 0:
            del self._waiters[task_id]
            self._finals.pop(task_id, None)  # the vectors live in the outcomes now

    def finished(self, task_id: str, task: EmbedTask) -> V2Task:
        return self._finals[task_id]

    def duration(self, task: V2Task) -> float | None:
        return getattr(task.metadata, "duration", None)  # video and audio metadata have one


async def _size(path: Path, input_type: str) -> int:
    try:
        return (await anyio.to_thread.run_sync(path.stat)).st_size
    except OSError as e:  # gone since it was hashed
        where = f"{input_type}.media_source"
        raise invalid(where, f"{where} {str(path)!r} cannot be read: {e.strerror}.") from None


def _report(progress: ProgressCallback | None, sent: int, total: int | None) -> None:
    if progress is not None:
        progress(sent, total)

