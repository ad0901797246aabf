"""``embed_many``: many inputs through create -> wait -> retrieve, one outcome each.

At most ``concurrency`` items are in flight (uploading, processing or being
retrieved); the input iterable is read only as slots free up, so 100,000 inputs
never become 100,000 coroutines or open files. Uploads are further bounded by
the client's ``Limits.max_uploads``, and every wait shares one
:class:`StatusWatcher`. What differs between the v1 and v2 APIs (the create,
the list the watcher pages through, the task an outcome carries) sits in an
adapter (:mod:`._batch_api`); the journal, dedupe and resume are the same.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
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
)
from datetime import datetime
from pathlib import Path
from typing import Generic

import anyio
import anyio.to_thread
import attrs
from anyio.streams.memory import MemoryObjectSendStream

from .._params import invalid
from .._retry import TRANSIENT_TASK_ERRORS
from ..errors import (
    AioEmbedError,
    BadRequestError,
    JournalError,
    NotFoundError,
    PayloadTooLargeError,
    RequestTimeoutError,
    TaskFailedError,
)
from ..models import EmbedTask, TaskStatus
from ._assets import Assets
from ._batch_api import BatchApi, CreateContext
from ._batch_items import BatchInput, BatchItem, Outcome, TaskT
from ._duration import media_seconds
from ._journal import Journal
from ._pacing import Pacer
from ._pg_journal import PgJournal, is_pg_url
from ._streams import ProducerStream
from ._tasks import TaskCalls
from ._watch import StatusUpdate, StatusWatcher

__all__ = ["BatchInput", "BatchItem", "BatchRun", "Outcome", "watch_many"]

log = logging.getLogger("aioembed")


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


AnyJournal = Journal | PgJournal
JournalArg = str | os.PathLike[str] | Journal | PgJournal | None


def _journal(path: JournalArg) -> AnyJournal | None:
    """A SQLite journal for a path, a shared :class:`PgJournal` for a ``postgresql://`` URL."""
    if path is None or isinstance(path, (Journal, PgJournal)):
        return path
    return PgJournal(path) if isinstance(path, str) and is_pg_url(path) else Journal(path)


@attrs.define(eq=False)
class _ItemRun(Generic[TaskT]):
    """One item on its way through the batch: what is known of it so far."""

    index: int
    item: BatchItem
    key: str = ""
    #: The parameters that, with the content, decide the result (the dedupe identity).
    params: tuple[object, ...] = ()
    task_id: str | None = None
    resumed: bool = False
    deduplicated: bool = False
    #: The asset uploaded for this item (this run or, per the journal, an earlier one).
    asset_id: str | None = None
    #: Media seconds charged to the budget for this item's create (``None``: none).
    charged: float | None = None

    def outcome(
        self, task: TaskT | None = None, error: AioEmbedError | None = None
    ) -> Outcome[TaskT]:
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
class BatchRun(Generic[TaskT]):
    """One ``embed_many`` call's settings and shared state; see ``EmbedTasks.embed_many``."""

    api: BatchApi[TaskT]
    concurrency: int = attrs.field(validator=attrs.validators.ge(1))
    journal: AnyJournal | None = attrs.field(converter=_journal)
    ordered: bool
    dedupe: bool
    sleep_interval: float
    max_interval: float
    task_timeout: float | None
    timeout: float | None
    on_upload: UploadCallback | None
    on_status: StatusCallback | None
    delete_assets: bool
    assets: Assets
    pacer: Pacer
    deadline: float | None = attrs.field(init=False)
    _shared: dict[tuple[str, tuple[object, ...]], _Shared] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def stream(
        self, inputs: Iterable[BatchInput] | AsyncIterable[BatchInput]
    ) -> ProducerStream[Outcome[TaskT]]:
        return ProducerStream(lambda send: self.produce(inputs, send), buffer=self.concurrency)

    async def _notify(self, update: StatusUpdate) -> None:
        if self.on_status is not None:
            result = self.on_status(update)
            if inspect.isawaitable(result):
                await result

    async def produce(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        send: MemoryObjectSendStream[Outcome[TaskT]],
    ) -> None:
        watcher = StatusWatcher(
            self.api.list_processing,
            self.api.resolve,
            sleep_interval=self.sleep_interval,
            max_interval=self.max_interval,
            on_update=self._notify,
        )
        slots = anyio.Semaphore(self.concurrency)
        emit = _Emitter[TaskT](send, slots, self.ordered)

        shared = self.journal if isinstance(self.journal, PgJournal) else None

        async def one(index: int, item: BatchItem) -> None:
            outcome = await self._process(index, item, watcher)
            await emit(outcome)
            if shared is not None:
                key = self._key(item)
                await (shared.complete([key]) if shared.complete_on_emit else shared.finish(key))

        # Opened before the first item: a path that is no journal fails the batch at once.
        if self.journal is not None:
            await self.journal.open()
        try:
            async with anyio.create_task_group() as outer:
                outer.start_soon(watcher.run)
                heartbeat = anyio.CancelScope()
                if shared is not None:
                    shared.share(self.pacer)  # one budget for every process of the batch
                    outer.start_soon(_beat, shared, heartbeat)
                    items = self._claimed(shared, inputs)
                else:
                    items = (BatchItem.of(v) async for v in _aiter(inputs))
                async with anyio.create_task_group() as tg:
                    index = 0
                    async for item in items:
                        await slots.acquire()
                        tg.start_soon(one, index, item)
                        index += 1
                watcher.close()
                heartbeat.cancel()
        finally:
            if self.journal is not None:
                with anyio.CancelScope(shield=True):
                    await self.journal.close()

    def _start(self, run: _ItemRun[TaskT]) -> None:
        run.params = self.api.identity(run.item)
        run.key = self._key(run.item)

    def _key(self, item: BatchItem) -> str:
        """The item's identity in the journal: its own key, or its input and parameters."""
        return item.key or "|".join(str(v) for v in (item.label, *self.api.identity(item)))

    async def _claimed(
        self, journal: PgJournal, inputs: Iterable[BatchInput] | AsyncIterable[BatchInput]
    ) -> AsyncIterator[BatchItem]:
        """The items of ``inputs`` this process wins, in turn, until none is left open.

        Every process registers its inputs; then each claims, among them, what nobody
        holds. With nothing to claim but items others are working on, it waits: a
        holder that dies lets its leases expire, and the items come back here. An
        item another process holds and finishes is not this process's outcome.
        """
        items: dict[str, BatchItem] = {}
        async for value in _aiter(inputs):
            item = BatchItem.of(value)
            items[self._key(item)] = item
        keys = list(items)
        await journal.register([(k, items[k].label) for k in keys], api=self.api.name)
        while True:
            claimed = await journal.claim(self.concurrency, keys)
            for key in claimed:
                yield items[key]
            if not claimed:
                if not await journal.others_open(keys):
                    return
                await anyio.sleep(min(1.0, journal.lease / 4))

    async def _process(
        self, index: int, item: BatchItem, watcher: StatusWatcher
    ) -> Outcome[TaskT]:
        """Everything that becomes of one item; its errors end up in its outcome."""
        run = _ItemRun[TaskT](index, item)
        try:
            self._start(run)
            content_hash = await _content_hash(item)
            idempotency_key = await self._journal_entry(run, content_hash)
            await self._obtain_task(run, content_hash, idempotency_key)
            task = await self._wait(run, watcher)
        except AioEmbedError as e:
            await self._record(run.key, e)
            await self._clean_up(run)
            return run.outcome(error=e)
        if self.journal is not None:
            await self.journal.set_status(run.key, task.status.value)
        if run.charged is not None:
            self.pacer.settle(run.charged, _span(item, self.api.duration(task)))
        await self._clean_up(run)
        return run.outcome(task)

    async def _clean_up(self, run: _ItemRun[TaskT]) -> None:
        """With ``delete_assets``, delete the item's asset now that its task is done.

        A refusal (``409`` while a task that timed out here still processes, a
        network failure) is logged and the journal keeps the id: a rerun of the
        batch deletes it then.
        """
        if not self.delete_assets or run.asset_id is None:
            return
        try:
            await self.assets.delete(run.asset_id)
        except NotFoundError:
            pass  # already gone: nothing left behind either way
        except AioEmbedError as e:
            log.warning("asset %s of %s not deleted: %s", run.asset_id, run.item.label, e)
            return
        if self.journal is not None:
            await self.journal.set_asset(run.key, None)
        run.asset_id = None

    async def _journal_entry(self, run: _ItemRun[TaskT], content_hash: str | None) -> str | None:
        """Look the item up in the journal: a known task resumes; returns the create's key."""
        if self.journal is None:
            return None
        entry = await self.journal.begin(run.key, run.item.label, content_hash, api=self.api.name)
        if entry.api != self.api.name:
            raise JournalError(
                f"journal {self.journal.path} holds {run.item.label!r} as a {entry.api} task; "
                f"this batch uses the {self.api.name} API. Pass another journal path.",
                path=str(self.journal.path),
            )
        if entry.status == "failed" and entry.error_code in TRANSIENT_TASK_ERRORS:
            entry = await self.journal.reset(run.key)
        run.task_id = entry.task_id
        run.resumed = entry.task_id is not None
        run.asset_id = entry.asset_id
        return entry.idempotency_key

    async def _obtain_task(
        self, run: _ItemRun[TaskT], content_hash: str | None, idempotency_key: str | None
    ) -> None:
        """Give the item a task: its twin's (same content and parameters) or a new one."""
        if run.task_id is not None:
            if self.dedupe and content_hash is not None:
                # A resumed task serves the twins this run meets after it, too.
                known = _Shared(task_id=run.task_id)
                known.ready.set()
                self._shared.setdefault((content_hash, run.params), known)
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
                run.task_id = await self._create(run, idempotency_key)
            if shared is not None:
                shared.task_id = run.task_id
            if self.journal is not None:
                await self.journal.set_task(run.key, run.task_id)
        finally:
            if shared is not None:
                shared.ready.set()  # twins go on, with its task or to make their own

    async def _wait(self, run: _ItemRun[TaskT], watcher: StatusWatcher) -> TaskT:
        """The item's finished task, within its own and the batch's deadline."""
        task_id = run.task_id
        assert task_id is not None
        timeout = self.task_timeout
        if self.deadline is not None:
            remaining = max(0.0, self.deadline - time.monotonic())
            timeout = remaining if timeout is None else min(timeout, remaining)
        self.api.watching(task_id)
        try:
            task = await watcher.watch(task_id, timeout=timeout).result()
            if task.status is TaskStatus.FAILED:
                raise TaskFailedError(task_id, task.error)
            return self.api.finished(task_id, task)
        finally:
            self.api.done_watching(task_id)

    async def _create(self, run: _ItemRun[TaskT], idempotency_key: str | None) -> str:
        item = run.item
        progress = None
        if self.on_upload is not None:
            callback = self.on_upload

            def progress(sent: int, total: int | None) -> None:
                callback(item, sent, total)

        async def on_asset(asset_id: str) -> None:
            run.asset_id = asset_id
            if self.journal is not None:
                await self.journal.set_asset(run.key, asset_id)

        ctx = CreateContext(idempotency_key, progress, run.asset_id, on_asset)

        # The batch timeout bounds creates too (a stalled server must not hold the batch
        # past it); the journal's idempotency key keeps a rerun from duplicating the task.
        remaining = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        with anyio.move_on_after(remaining):
            if self.pacer.paces_media:
                span = _span(item, await _header_seconds(item))
                run.charged = self.pacer.estimate() if span is None else span
                await self.pacer.media(run.charged)
            return await self.api.create(item, ctx)
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
class _Emitter(Generic[TaskT]):
    """Sends outcomes as they come, or in input order; each sent outcome frees a slot."""

    send: MemoryObjectSendStream[Outcome[TaskT]]
    slots: anyio.Semaphore
    ordered: bool
    _held: dict[int, Outcome[TaskT]] = attrs.field(factory=dict)
    _next: int = 0

    async def __call__(self, outcome: Outcome[TaskT]) -> None:
        if not self.ordered:
            await self.send.send(outcome)
            self.slots.release()
            return
        self._held[outcome.index] = outcome
        while self._next in self._held:
            await self.send.send(self._held.pop(self._next))
            self._next += 1
            self.slots.release()


async def _beat(journal: PgJournal, scope: anyio.CancelScope) -> None:
    with scope:
        await journal.keep_alive()


async def _content_hash(item: BatchItem) -> str | None:
    """SHA-256 of an item's file (``None`` for a URL), read on a worker thread.

    Only a regular file is read: ``/dev/zero`` would be hashed forever and opening
    a FIFO blocks until a writer comes.
    """
    path = item.local_file
    if path is None:
        return None
    field = "video_file" if item.task_input is None else "media_source"
    try:
        mode = (await anyio.to_thread.run_sync(path.stat)).st_mode
        if not stat.S_ISREG(mode):
            raise invalid(field, f"{field} {str(path)!r} is not a regular file.")
        return await anyio.to_thread.run_sync(_sha256, path)
    except OSError as e:
        raise invalid(field, f"{field} {str(path)!r} cannot be read: {e.strerror}.") from None


async def _header_seconds(item: BatchItem) -> float | None:
    """The item's media duration from its file's header (``0`` for an image)."""
    if item.task_input is not None and item.task_input.input_type in ("image", "document"):
        return 0.0
    path = item.local_file
    return None if path is None else await anyio.to_thread.run_sync(media_seconds, path)


def _span(item: BatchItem, duration: float | None) -> float | None:
    """The seconds of ``duration`` the item's offsets select (``None`` if unknown)."""
    if duration is None:
        return None
    source = item.task_input
    start = getattr(source, "start_sec", None) if source else item.video_start_offset_sec
    end = getattr(source, "end_sec", None) if source else item.video_end_offset_sec
    return max(0.0, min(duration, duration if end is None else end) - (start or 0.0))


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
        watcher.watch_all(ids, task_timeout=task_timeout, timeout=timeout)
        await watcher.run()

    return ProducerStream(produce, buffer=max(16, len(ids)))
