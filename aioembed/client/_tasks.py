"""``client.embed.tasks``: create, inspect, wait for and list video embedding tasks."""

from __future__ import annotations

import inspect
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import quote

import anyio
import attrs

from .._params import check_task_params
from .._wire import format_datetime, structure
from ..errors import TaskFailedError, WaitTimeoutError
from ..models import EmbedTask, TaskPage, TaskStatus
from ._transport import Transport
from ._upload import FileInput, ProgressCallback, as_source

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterable, Iterable

    from ._batch import BatchInput, Outcome, UploadCallback
    from ._batch import StatusCallback as BatchStatusCallback
    from ._streams import ProducerStream
    from ._watch import StatusUpdate

__all__ = ["EmbedTasks", "StatusCallback", "TaskHandle"]

DEFAULT_MODEL = "Marengo-retrieval-2.7"
#: Called with every status update; may be sync or async.
StatusCallback = Callable[[EmbedTask], None | Awaitable[None]]
TimeArg = Union[datetime, str, None]


def _task_path(task_id: str, suffix: str = "") -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string")
    return f"embed/tasks/{quote(task_id, safe='')}{suffix}"


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fmt_time(value: TimeArg) -> str | None:
    return format_datetime(value) if isinstance(value, datetime) else value


@attrs.frozen
class TaskHandle:
    """A created task bound to the client that made it.

    ``task = await client.embed.tasks.create(...)`` then
    ``async for status in task.wait_for_done(): ...`` and ``await task.retrieve()``.
    """

    id: str
    _tasks: EmbedTasks = attrs.field(repr=False, eq=False)

    async def status(self) -> EmbedTask:
        return await self._tasks.status(self.id)

    def wait_for_done(self, **kw: Any) -> AsyncIterator[EmbedTask]:
        return self._tasks.wait_for_done(self.id, **kw)

    async def wait(self, **kw: Any) -> EmbedTask:
        return await self._tasks.wait(self.id, **kw)

    async def retrieve(self, *, embedding_option: Sequence[str] | None = None) -> EmbedTask:
        return await self._tasks.retrieve(self.id, embedding_option=embedding_option)


class EmbedTasks:
    """Video embedding tasks (``/embed/tasks``); every method shares the client's session."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def handle(self, task_id: str) -> TaskHandle:
        """A :class:`TaskHandle` for a task created elsewhere (e.g. by an earlier run)."""
        return TaskHandle(task_id, self)

    async def create(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        video_file: FileInput | None = None,
        video_url: str | None = None,
        video_start_offset_sec: float | None = None,
        video_end_offset_sec: float | None = None,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[str] | str | None = None,
        idempotency_key: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TaskHandle:
        """Upload (or point at) a video and start embedding it.

        ``video_file`` is a path, bytes, a binary file or an async iterable of
        bytes; it streams from disk in chunks, and ``progress(sent, total)`` is
        called as it goes. Every contract rule that needs only these arguments is
        checked before a byte is sent: :class:`~aioembed.ParameterError`
        (``parameter_invalid`` / ``parameter_not_provided``), and
        :class:`~aioembed.PayloadTooLargeError` past ``Limits.max_upload_bytes``.

        An ``Idempotency-Key`` is sent (generated unless given) so a retried
        create can never make a second task.
        """
        scopes = (
            [video_embedding_scope]
            if isinstance(video_embedding_scope, str)
            else list(video_embedding_scope or ["clip"])
        )
        if video_file is not None and video_url is not None:
            # The contract lets video_url win; uploading a file that is then ignored is a bug.
            raise ValueError("pass either video_file or video_url, not both")
        check_task_params(
            model_name,
            start=video_start_offset_sec or 0.0,
            end=video_end_offset_sec,
            clip_length=6.0 if video_clip_length is None else video_clip_length,
            scopes=scopes,
            has_file=video_file is not None,
            video_url=video_url,
        )
        source = (
            as_source(video_file, name="video_file", max_bytes=self._t.limits.max_upload_bytes)
            if video_file is not None
            else None
        )
        fields = [("model_name", model_name)]
        if video_url is not None:
            fields.append(("video_url", video_url))
        for key, number in (
            ("video_start_offset_sec", video_start_offset_sec),
            ("video_end_offset_sec", video_end_offset_sec),
            ("video_clip_length", video_clip_length),
        ):
            if number is not None:
                fields.append((key, _fmt_number(number)))
        if video_embedding_scope is not None:
            fields.extend(("video_embedding_scope", s) for s in scopes)

        if idempotency_key is None and self._t.retry.idempotency_keys:
            idempotency_key = uuid.uuid4().hex
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = await self._t.post_form(
            "embed/tasks",
            fields,
            file_field="video_file",
            source=source,
            progress=progress,
            idempotent=headers is not None,
            headers=headers,
        )
        return TaskHandle(str(data["_id"]), self)

    async def status(self, task_id: str) -> EmbedTask:
        """The task's status, metadata and (an [ext] of our server) progress or error."""
        return structure(await self._t.request("GET", _task_path(task_id, "/status")), EmbedTask)

    async def retrieve(
        self, task_id: str, *, embedding_option: Sequence[str] | None = None
    ) -> EmbedTask:
        """The task with its segments once ``ready`` (without them before).

        ``embedding_option`` selects e.g. ``["visual-text", "audio"]``; omitted
        means every option the model has.
        """
        params = [("embedding_option", o) for o in embedding_option or ()]
        data = await self._t.request("GET", _task_path(task_id), params=params)
        return structure(data, EmbedTask)

    async def list_page(
        self,
        *,
        page: int = 1,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: TaskStatus | str | Sequence[TaskStatus | str] | None = None,
    ) -> TaskPage:
        """One page of tasks, newest first."""
        params: list[tuple[str, str]] = [("page", str(page)), ("page_limit", str(page_limit))]
        for key, value in (("started_at", started_at), ("ended_at", ended_at)):
            text = _fmt_time(value)
            if text is not None:
                params.append((key, text))
        statuses = [status] if isinstance(status, str) else list(status or ())
        params.extend(("status", str(s)) for s in statuses)
        return structure(await self._t.request("GET", "embed/tasks", params=params), TaskPage)

    async def list(
        self,
        *,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: TaskStatus | str | Sequence[TaskStatus | str] | None = None,
    ) -> AsyncGenerator[EmbedTask, None]:
        """Every matching task, walking pages until the server runs out."""
        page = 1
        while True:
            result = await self.list_page(
                page=page,
                page_limit=page_limit,
                started_at=started_at,
                ended_at=ended_at,
                status=status,
            )
            for task in result.data:
                yield task
            info = result.page_info
            if not result.data or info is None or page >= info.total_page:
                return
            page += 1

    async def wait_for_done(
        self,
        task_id: str,
        *,
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
        max_interval: float | None = None,
    ) -> AsyncIterator[EmbedTask]:
        """Yield every status update, the first at once, until ``ready`` or ``failed``.

        Polls every ``sleep_interval`` seconds, stretching by 1.5x per poll (with
        jitter) up to ``max_interval`` (default 4 x ``sleep_interval``) while the
        task stays slow. ``timeout`` (seconds) bounds the whole wait:
        :class:`~aioembed.WaitTimeoutError` when it passes. 401/404 raise at once;
        transient errors are retried by the transport. Polling happens only while
        the caller iterates, so abandoning the loop leaves nothing running.
        """
        if sleep_interval <= 0:
            raise ValueError("sleep_interval must be positive")
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = max_interval if max_interval is not None else 4 * sleep_interval
        interval = sleep_interval
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(task_id, timeout or 0.0)
            with anyio.move_on_after(remaining) as scope:
                current = await self.status(task_id)
            if scope.cancelled_caught:
                raise WaitTimeoutError(task_id, timeout or 0.0)
            if callback is not None:
                result = callback(current)
                if inspect.isawaitable(result):
                    await result
            yield current
            if current.status.is_terminal:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            pause = interval * random.uniform(0.9, 1.1)
            await anyio.sleep(pause if remaining is None else max(0.0, min(pause, remaining)))
            interval = min(interval * 1.5, max(cap, sleep_interval))

    async def wait(
        self,
        task_id: str,
        *,
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
        raise_on_failure: bool = True,
    ) -> EmbedTask:
        """Await the final status (the seed's ``waitForDone``).

        Raises :class:`~aioembed.TaskFailedError` for a ``failed`` task unless
        ``raise_on_failure`` is false, and :class:`~aioembed.WaitTimeoutError`.
        """
        final: EmbedTask | None = None
        updates = self.wait_for_done(
            task_id, sleep_interval=sleep_interval, timeout=timeout, callback=callback
        )
        async for final in updates:
            pass
        assert final is not None  # the generator yields at least once or raises
        if raise_on_failure and final.status is TaskStatus.FAILED:
            raise TaskFailedError(task_id, final.error)
        return final

    def embed_many(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        *,
        model_name: str = DEFAULT_MODEL,
        concurrency: int = 64,
        clip_length: float | None = None,
        scopes: Sequence[str] | None = None,
        options: Sequence[str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        ordered: bool = False,
        retrieve: bool = True,
        dedupe: bool = True,
        sleep_interval: float = 1.0,
        max_interval: float = 10.0,
        task_timeout: float | None = None,
        timeout: float | None = None,
        on_upload: UploadCallback | None = None,
        on_status: BatchStatusCallback | None = None,
    ) -> ProducerStream[Outcome]:
        """Embed many videos; iterate one :class:`~aioembed.Outcome` per input as each completes.

        Use as ``async with tasks.embed_many(paths) as outcomes: async for o in outcomes``.
        ``inputs`` are paths, URLs or :class:`~aioembed.BatchItem` (sync or async
        iterable, read lazily). At most ``concurrency`` items are in flight; uploads
        are also bounded by ``Limits.max_uploads``. With ``journal`` (a SQLite path)
        a rerun after a crash resumes without re-uploading or duplicating tasks.
        Identical file content is embedded once (``dedupe``). ``ordered`` yields in
        input order. ``task_timeout`` / ``timeout`` (seconds) bound each task / the
        whole batch; a late item's outcome carries :class:`~aioembed.WaitTimeoutError`.
        """
        from ._batch import BatchRun

        return BatchRun(
            tasks=self,
            model_name=model_name,
            concurrency=concurrency,
            clip_length=clip_length,
            scopes=scopes,
            options=options,
            journal=journal,
            ordered=ordered,
            retrieve=retrieve,
            dedupe=dedupe,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
            on_upload=on_upload,
            on_status=on_status,
        ).stream(inputs)

    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        sleep_interval: float = 1.0,
        max_interval: float = 10.0,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[StatusUpdate]:
        """Status updates for many tasks from shared list polls, not one poll per task.

        Use as ``async with tasks.watch_many(ids) as updates: async for u in updates``.
        Each task yields its first status, every change, then one ``final`` update
        (terminal, or with an error such as :class:`~aioembed.WaitTimeoutError`).
        ``started_at`` (no later than the oldest task's creation) narrows each poll.
        """
        from ._batch import watch_many

        return watch_many(
            self,
            task_ids,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
            started_at=started_at,
        )
