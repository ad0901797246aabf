"""``embed_many``: many videos through create -> wait -> retrieve, one outcome each.

At most ``concurrency`` items are in flight (uploading, processing or being
retrieved); the input iterable is read only as slots free up, so 100,000 inputs
never become 100,000 coroutines or open files. Uploads are further bounded by
the client's ``Limits.max_uploads``, and every wait shares one
:class:`StatusWatcher`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import stat
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from datetime import datetime
from pathlib import Path
from typing import Union

import anyio
import anyio.to_thread
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from .._params import DEFAULT_CLIP_LENGTH, invalid
from .._retry import TRANSIENT_TASK_ERRORS
from ..errors import (
    AioEmbedError,
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RequestTimeoutError,
    TaskFailedError,
)
from ..models import EmbedTask, TaskStatus
from ._defaults import DEFAULT_SCOPES
from ._journal import Journal
from ._streams import ProducerStream
from ._tasks import Scope, TaskCalls
from ._watch import StatusUpdate, StatusWatcher

__all__ = ["BatchInput", "BatchItem", "BatchRun", "Outcome", "watch_many"]


@attrs.frozen
class BatchItem:
    """One video of a batch with its own parameters (``None`` = the batch's default)."""

    video_file: str | os.PathLike[str] | None = None
    video_url: str | None = None
    video_start_offset_sec: float | None = None
    video_end_offset_sec: float | None = None
    video_clip_length: float | None = None
    video_embedding_scope: tuple[Scope, ...] | None = None
    #: The item's identity in a journal; defaults to its input and parameters.
    key: str | None = None

    @classmethod
    def of(cls, value: BatchInput) -> BatchItem:
        if isinstance(value, BatchItem):
            return value
        text = os.fspath(value)
        if text.lower().startswith(("http://", "https://")):
            return cls(video_url=text)
        return cls(video_file=Path(text))

    @property
    def label(self) -> str:
        return self.video_url or os.fspath(self.video_file or "")


BatchInput = Union[str, "os.PathLike[str]", BatchItem]


@attrs.frozen
class Outcome:
    """What became of one input: exactly one per input, success or not.

    ``task`` is the retrieved task (with segments when ``ready``); ``error`` is
    a typed :class:`~aioembed.AioEmbedError` when the item did not succeed.
    ``resumed`` says the task id came from the journal (no upload this run);
    ``deduplicated`` that another item with the same content made the task.
    """

    index: int
    item: BatchItem
    task_id: str | None = None
    task: EmbedTask | None = None
    error: AioEmbedError | None = None
    resumed: bool = False
    deduplicated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.task is not None

    @property
    def status(self) -> TaskStatus | None:
        return self.task.status if self.task is not None else None


UploadCallback = Callable[[BatchItem, int, int | None], object]
StatusCallback = Callable[[StatusUpdate], None | Awaitable[None]]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


async def _aiter(
    inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
) -> AsyncIterator[BatchInput]:
    if isinstance(inputs, AsyncIterable):
        async for value in inputs:
            yield value
    else:
        for value in inputs:
            yield value


@attrs.define(eq=False)
class _Shared:
    """The first item with some content creates the task; twins wait for its id."""

    ready: anyio.Event = attrs.Factory(anyio.Event)
    task_id: str | None = None


def _scopes_or_none(values: Sequence[Scope] | None) -> tuple[Scope, ...] | None:
    return tuple(values) if values else None


def _options_or_none(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values else None


def _journal(path: str | os.PathLike[str] | Journal | None) -> Journal | None:
    return path if path is None or isinstance(path, Journal) else Journal(path)


@attrs.define(eq=False)
class _ItemRun:
    """One item on its way through the batch: what is known of it so far."""

    index: int
    item: BatchItem
    key: str
    #: The parameters that, with the content, decide the result (the dedupe identity).
    params: tuple[object, ...]
    task_id: str | None = None
    resumed: bool = False
    deduplicated: bool = False

    def outcome(self, task: EmbedTask | None = None, error: AioEmbedError | None = None) -> Outcome:
        return Outcome(
            self.index,
            self.item,
            self.task_id,
            task,
            error,
            resumed=self.resumed,
            deduplicated=self.deduplicated,
        )


@attrs.define(eq=False, kw_only=True)
class BatchRun:
    """One ``embed_many`` call's settings and shared state; see ``EmbedTasks.embed_many``."""

    tasks: TaskCalls
    model_name: str
    concurrency: int = attrs.field(validator=attrs.validators.ge(1))
    clip_length: float | None
    scopes: tuple[Scope, ...] | None = attrs.field(converter=_scopes_or_none)
    options: tuple[str, ...] | None = attrs.field(converter=_options_or_none)
    journal: Journal | None = attrs.field(converter=_journal)
    ordered: bool
    retrieve: bool
    dedupe: bool
    sleep_interval: float
    max_interval: float
    task_timeout: float | None
    timeout: float | None
    on_upload: UploadCallback | None
    on_status: StatusCallback | None
    deadline: float | None = attrs.field(init=False)
    _shared: dict[tuple[str, tuple[object, ...]], _Shared] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def stream(
        self, inputs: Iterable[BatchInput] | AsyncIterable[BatchInput]
    ) -> ProducerStream[Outcome]:
        return ProducerStream(lambda send: self.produce(inputs, send), buffer=self.concurrency)

    def _list_processing(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
        return self.tasks.list(page_limit=50, status="processing", started_at=since)

    async def _resolve(self, task_id: str) -> EmbedTask:
        if self.retrieve:
            return await self.tasks.retrieve(task_id, embedding_option=self.options)
        return await self.tasks.status(task_id)

    async def _notify(self, update: StatusUpdate) -> None:
        if self.on_status is not None:
            result = self.on_status(update)
            if inspect.isawaitable(result):
                await result

    async def produce(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        send: MemoryObjectSendStream[Outcome],
    ) -> None:
        watcher = StatusWatcher(
            self._list_processing,
            self._resolve,
            sleep_interval=self.sleep_interval,
            max_interval=self.max_interval,
            on_update=self._notify,
        )
        slots = anyio.Semaphore(self.concurrency)
        emit = _Emitter(send, slots, self.ordered)

        async def one(index: int, item: BatchItem) -> None:
            await emit(await self._process(index, item, watcher))

        # Opened before the first item: a path that is no journal fails the batch at once.
        if self.journal is not None:
            await self.journal.open()
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(watcher.run)
                async with anyio.create_task_group() as tg:
                    index = 0
                    async for value in _aiter(inputs):
                        await slots.acquire()
                        tg.start_soon(one, index, BatchItem.of(value))
                        index += 1
                watcher.close()
        finally:
            if self.journal is not None:
                with anyio.CancelScope(shield=True):
                    await self.journal.close()

    def _start(self, index: int, item: BatchItem) -> _ItemRun:
        params: tuple[object, ...] = (
            self.model_name,
            item.video_start_offset_sec,
            item.video_end_offset_sec,
            item.video_clip_length or self.clip_length or DEFAULT_CLIP_LENGTH,
            ",".join(str(s) for s in item.video_embedding_scope or self.scopes or DEFAULT_SCOPES),
        )
        key = item.key or "|".join(str(v) for v in (item.label, *params))
        return _ItemRun(index, item, key, params)

    async def _process(self, index: int, item: BatchItem, watcher: StatusWatcher) -> Outcome:
        """Everything that becomes of one item; its errors end up in its outcome."""
        run = self._start(index, item)
        try:
            content_hash = await _content_hash(item)
            idempotency_key = await self._journal_entry(run, content_hash)
            await self._obtain_task(run, content_hash, idempotency_key)
            task = await self._wait(run, watcher)
        except AioEmbedError as e:
            await self._record(run.key, e)
            return run.outcome(error=e)
        if self.journal is not None:
            await self.journal.set_status(run.key, task.status.value)
        return run.outcome(task)

    async def _journal_entry(self, run: _ItemRun, content_hash: str | None) -> str | None:
        """Look the item up in the journal: a known task resumes; returns the create's key."""
        if self.journal is None:
            return None
        entry = await self.journal.begin(run.key, run.item.label, content_hash)
        if entry.status == "failed" and entry.error_code in TRANSIENT_TASK_ERRORS:
            entry = await self.journal.reset(run.key)
        run.task_id = entry.task_id
        run.resumed = entry.task_id is not None
        return entry.idempotency_key

    async def _obtain_task(
        self, run: _ItemRun, content_hash: str | None, idempotency_key: str | None
    ) -> None:
        """Give the item a task: its twin's (same content and parameters) or a new one."""
        if run.task_id is not None:
            return
        shared: _Shared | None = None
        if self.dedupe and content_hash is not None:
            twin = self._shared.get((content_hash, run.params))
            if twin is None:
                shared = self._shared[(content_hash, run.params)] = _Shared()
            else:
                await twin.ready.wait()
                run.task_id, run.deduplicated = twin.task_id, twin.task_id is not None
        try:
            if run.task_id is None:
                run.task_id = await self._create(run.item, idempotency_key)
            if shared is not None:
                shared.task_id = run.task_id
            if self.journal is not None:
                await self.journal.set_task(run.key, run.task_id)
        finally:
            if shared is not None:
                shared.ready.set()  # twins go on, with its task or to make their own

    async def _wait(self, run: _ItemRun, watcher: StatusWatcher) -> EmbedTask:
        """The item's finished task, within its own and the batch's deadline."""
        assert run.task_id is not None
        timeout = self.task_timeout
        if self.deadline is not None:
            remaining = max(0.0, self.deadline - time.monotonic())
            timeout = remaining if timeout is None else min(timeout, remaining)
        task = await watcher.watch(run.task_id, timeout=timeout).result()
        if task.status is TaskStatus.FAILED:
            raise TaskFailedError(run.task_id, task.error)
        return task

    async def _create(self, item: BatchItem, idempotency_key: str | None) -> str:
        progress = None
        if self.on_upload is not None:
            callback = self.on_upload

            def progress(sent: int, total: int | None) -> None:
                callback(item, sent, total)

        # The batch timeout bounds creates too (a stalled server must not hold the batch
        # past it); the journal's idempotency key keeps a rerun from duplicating the task.
        remaining = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        with anyio.move_on_after(remaining):
            handle = await self.tasks.create(
                self.model_name,
                video_file=item.video_file if item.video_url is None else None,
                video_url=item.video_url,
                video_start_offset_sec=item.video_start_offset_sec,
                video_end_offset_sec=item.video_end_offset_sec,
                video_clip_length=item.video_clip_length or self.clip_length,
                video_embedding_scope=item.video_embedding_scope or self.scopes,
                idempotency_key=idempotency_key,
                progress=progress,
            )
            return handle.id
        raise RequestTimeoutError(f"the batch timeout passed before {item.label!r} was created")

    async def _record(self, key: str, error: AioEmbedError) -> None:
        """Journal a failure that is about the item, so a rerun does not try it again.

        Anything else (transient errors, timeouts, a refused key) leaves it pending.
        """
        if self.journal is None:
            return
        if isinstance(error, TaskFailedError):
            code = error.error.code if error.error is not None else "task_failed"
            message = error.error.message if error.error is not None else str(error)
            await self.journal.set_status(key, "failed", code, message)
        elif isinstance(error, (BadRequestError, PayloadTooLargeError, NotFoundError)):
            await self.journal.set_status(key, "failed", error.code, error.message)


@attrs.define(eq=False)
class _Emitter:
    """Sends outcomes as they come, or in input order; each sent outcome frees a slot."""

    send: MemoryObjectSendStream[Outcome]
    slots: anyio.Semaphore
    ordered: bool
    _held: dict[int, Outcome] = attrs.field(factory=dict)
    _next: int = 0

    async def __call__(self, outcome: Outcome) -> None:
        if not self.ordered:
            await self.send.send(outcome)
            self.slots.release()
            return
        self._held[outcome.index] = outcome
        while self._next in self._held:
            await self.send.send(self._held.pop(self._next))
            self._next += 1
            self.slots.release()


async def _content_hash(item: BatchItem) -> str | None:
    """SHA-256 of an item's file (``None`` for a URL), read on a worker thread.

    Only a regular file is read: ``/dev/zero`` would be hashed forever and opening
    a FIFO blocks until a writer comes.
    """
    if item.video_file is None or item.video_url is not None:
        return None
    path = Path(item.video_file)
    try:
        mode = (await anyio.to_thread.run_sync(path.stat)).st_mode
        if not stat.S_ISREG(mode):
            raise invalid("video_file", f"video_file {str(path)!r} is not a regular file.")
        return await anyio.to_thread.run_sync(_sha256, path)
    except OSError as e:
        raise invalid(
            "video_file", f"video_file {str(path)!r} cannot be read: {e.strerror}."
        ) from None


def watch_many(
    tasks: TaskCalls,
    task_ids: Iterable[str],
    *,
    sleep_interval: float,
    max_interval: float,
    task_timeout: float | None,
    timeout: float | None,
    started_at: datetime | None,
) -> ProducerStream[StatusUpdate]:
    ids = list(dict.fromkeys(task_ids))

    async def produce(send: MemoryObjectSendStream[StatusUpdate]) -> None:
        def list_processing(since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
            # The caller's tasks may be older than this watch: only their bound narrows the list.
            return tasks.list(page_limit=50, status="processing", started_at=started_at)

        def list_terminal(since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
            return tasks.list(page_limit=50, status=["ready", "failed"], started_at=started_at)

        watcher = StatusWatcher(
            list_processing,
            tasks.status,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            on_update=send.send,
            list_terminal=list_terminal,
        )
        for task_id in ids:
            per_task = task_timeout if timeout is None else min(task_timeout or timeout, timeout)
            watcher.watch(task_id, timeout=per_task)
        watcher.close()
        await watcher.run()

    return ProducerStream(produce, buffer=max(16, len(ids)))
