"""Single-task calls on ``/embed/tasks``: create, inspect, wait for and list tasks.

:class:`TaskCalls` holds them; ``client.embed.tasks`` (:class:`~aioembed.client.EmbedTasks`)
adds the batch calls on top, so the batch machinery depends on this module and
never the other way round.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, Union
from urllib.parse import quote

import anyio
import attrs

from .._params import DEFAULT_CLIP_LENGTH, check_task_params
from .._retry import Backoff
from ..contract import v1
from ..contract.v1 import structure
from ..errors import TaskFailedError, WaitTimeoutError
from ..models import EmbeddingScope, EmbedTask, TaskPage, TaskStatus
from ._defaults import DEFAULT_MAX_INTERVAL, DEFAULT_MODEL, DEFAULT_SCOPES, DEFAULT_SLEEP_INTERVAL
from ._paging import TimeArg, page_query, walk_pages
from ._transport import Transport
from ._upload import FileInput, ProgressCallback, as_source

__all__ = ["Scope", "Status", "StatusCallback", "TaskCalls", "TaskHandle"]

#: Called with every status update; may be sync or async.
StatusCallback = Callable[[EmbedTask], None | Awaitable[None]]
#: One ``video_embedding_scope`` value.
Scope = Union[Literal["clip", "video"], EmbeddingScope]
#: One task status, as a ``status=`` filter of :meth:`TaskCalls.list` takes it.
Status = Union[Literal["processing", "ready", "failed"], TaskStatus]
StatusFilter = Union[Status, Sequence[Status], None]


def _task_path(task_id: str, suffix: str = "") -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string")
    return f"embed/tasks/{quote(task_id, safe='')}{suffix}"


def _created_id(data: Any) -> str:
    """The ``_id`` of a create's answer; anything else is a malformed answer."""
    task_id = data.get("_id") if isinstance(data, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("expected an object with a non-empty string '_id'")
    return task_id


def _task(data: Any) -> EmbedTask:
    return structure(data, EmbedTask)


def _page(data: Any) -> TaskPage:
    return structure(data, TaskPage)


def _scopes(value: Sequence[Scope] | Scope | None) -> list[str]:
    if isinstance(value, str):
        return [str(value)]
    return [str(s) for s in value or DEFAULT_SCOPES]


@attrs.frozen
class TaskHandle:
    """A created task bound to the client that made it.

    ``task = await client.embed.tasks.create(...)`` then
    ``async for status in task.wait_for_done(): ...`` and ``await task.retrieve()``.
    The methods take the same arguments as :class:`TaskCalls`' of the same name.
    """

    id: str
    _tasks: TaskCalls = attrs.field(repr=False, eq=False)

    async def status(self) -> EmbedTask:
        return await self._tasks.status(self.id)

    def wait_for_done(
        self,
        *,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
    ) -> AsyncIterator[EmbedTask]:
        return self._tasks.wait_for_done(
            self.id,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            timeout=timeout,
            callback=callback,
        )

    async def wait(
        self,
        *,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
        raise_on_failure: bool = True,
    ) -> EmbedTask:
        return await self._tasks.wait(
            self.id,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            timeout=timeout,
            callback=callback,
            raise_on_failure=raise_on_failure,
        )

    async def retrieve(self, *, embedding_option: Sequence[str] | None = None) -> EmbedTask:
        return await self._tasks.retrieve(self.id, embedding_option=embedding_option)


class TaskCalls:
    """Video embedding tasks one at a time; every method shares the client's session."""

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
        video_embedding_scope: Sequence[Scope] | Scope | None = None,
        idempotency_key: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> TaskHandle:
        """Upload (or point at) a video and start embedding it.

        ``video_file`` is a path, bytes, a binary file or an async iterable of
        bytes; it streams from disk in chunks, and ``progress(sent, total)`` is
        called as it goes. ``video_clip_length`` defaults to
        :data:`~aioembed.client.DEFAULT_CLIP_LENGTH` (6 s) and
        ``video_embedding_scope`` to ``["clip"]`` (the service's defaults: unset
        fields are not sent). Every contract rule that needs only these arguments
        is checked before a byte is sent: :class:`~aioembed.ParameterError`
        (``parameter_invalid`` / ``parameter_not_provided``), and
        :class:`~aioembed.PayloadTooLargeError` past ``Limits.max_upload_bytes``.

        An ``Idempotency-Key`` is sent (generated unless given) so a retried
        create can never make a second task.
        """
        scopes = _scopes(video_embedding_scope)
        if video_file is not None and video_url is not None:
            # The contract lets video_url win; uploading a file that is then ignored is a bug.
            raise ValueError("pass either video_file or video_url, not both")
        check_task_params(
            model_name,
            start=video_start_offset_sec or 0.0,
            end=video_end_offset_sec,
            clip_length=DEFAULT_CLIP_LENGTH if video_clip_length is None else video_clip_length,
            scopes=scopes,
            has_file=video_file is not None,
            video_url=video_url,
        )
        source = (
            as_source(video_file, name="video_file", max_bytes=self._t.limits.max_upload_bytes)
            if video_file is not None
            else None
        )
        fields = v1.encode_create_task(
            model_name,
            video_url=video_url,
            start=video_start_offset_sec,
            end=video_end_offset_sec,
            clip_length=video_clip_length,
            scopes=scopes if video_embedding_scope is not None else None,
        )

        if idempotency_key is None and self._t.retry.idempotency_keys:
            idempotency_key = uuid.uuid4().hex
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        task_id = await self._t.post_form(
            "embed/tasks",
            fields,
            _created_id,
            file_field="video_file",
            source=source,
            progress=progress,
            idempotent=headers is not None,
            headers=headers,
        )
        return TaskHandle(task_id, self)

    async def status(self, task_id: str) -> EmbedTask:
        """The task's status, metadata and (an [ext] of our server) progress or error."""
        return await self._t.request("GET", _task_path(task_id, "/status"), _task)

    async def retrieve(
        self, task_id: str, *, embedding_option: Sequence[str] | None = None
    ) -> EmbedTask:
        """The task with its segments once ``ready`` (without them before).

        ``embedding_option`` selects e.g. ``["visual-text", "audio"]``; omitted
        means every option the model has.
        """
        params = [("embedding_option", o) for o in embedding_option or ()]
        return await self._t.request("GET", _task_path(task_id), _task, params=params)

    async def list_page(
        self,
        *,
        page: int = 1,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: StatusFilter = None,
    ) -> TaskPage:
        """One page of tasks, newest first."""
        params = page_query(page, page_limit, started_at, ended_at)
        statuses = [status] if isinstance(status, str) else list(status or ())
        params.extend(("status", str(s)) for s in statuses)
        return await self._t.request("GET", "embed/tasks", _page, params=params)

    def list(
        self,
        *,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: StatusFilter = None,
    ) -> AsyncGenerator[EmbedTask, None]:
        """Every matching task, page after page, until an empty or the last page."""
        return walk_pages(
            lambda page: self.list_page(
                page=page,
                page_limit=page_limit,
                started_at=started_at,
                ended_at=ended_at,
                status=status,
            )
        )

    async def wait_for_done(
        self,
        task_id: str,
        *,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
    ) -> AsyncIterator[EmbedTask]:
        """Yield every status update, the first at once, until ``ready`` or ``failed``.

        Polls after ``sleep_interval`` seconds, stretching 1.5x per poll (with
        jitter) up to ``max_interval`` while the task stays slow. ``timeout``
        (seconds) bounds the whole wait: :class:`~aioembed.WaitTimeoutError` when
        it passes. 401/404 raise at once; transient errors are retried by the
        transport. Polling happens only while the caller iterates, so abandoning
        the loop leaves nothing running.
        """
        if sleep_interval <= 0:
            raise ValueError("sleep_interval must be positive")
        deadline = None if timeout is None else time.monotonic() + timeout
        pace = Backoff(sleep_interval, max(max_interval, sleep_interval), factor=1.5, jitter=0.2)
        polls = 0
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
            polls += 1
            pause = pace.delay(polls)
            remaining = None if deadline is None else deadline - time.monotonic()
            await anyio.sleep(pause if remaining is None else max(0.0, min(pause, remaining)))

    async def wait(
        self,
        task_id: str,
        *,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        timeout: float | None = None,
        callback: StatusCallback | None = None,
        raise_on_failure: bool = True,
    ) -> EmbedTask:
        """Await the final status (polling as :meth:`wait_for_done` does).

        Raises :class:`~aioembed.TaskFailedError` for a ``failed`` task unless
        ``raise_on_failure`` is false, and :class:`~aioembed.WaitTimeoutError`.
        """
        final: EmbedTask | None = None
        updates = self.wait_for_done(
            task_id,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            timeout=timeout,
            callback=callback,
        )
        async for final in updates:
            pass
        assert final is not None  # the generator yields at least once or raises
        if raise_on_failure and final.status is TaskStatus.FAILED:
            raise TaskFailedError(task_id, final.error)
        return final
