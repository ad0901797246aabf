"""``client.embed.v2.tasks``: create, retrieve, list and wait for Embed API v2 tasks.

The official SDKs have no wait helper for v2 tasks; this one has v1's: a
deadline on every wait, polls that stretch while a task stays slow, transient
errors retried by the transport (400/401/404 raised at once), and nothing left
running when the caller stops iterating. Every rule that needs only the
arguments is checked before a byte is sent, by the validator the server runs.
"""

from __future__ import annotations

import inspect
import random
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import anyio
import attrs

from ..contract.v2 import (
    TASKS_PATH,
    ModelName,
    TaskCreated,
    TaskInput,
    TaskSummary,
    V2Task,
    V2TaskPage,
    check_task_body,
    task_body,
)
from .._retry import is_transient
from ..errors import AioEmbedError, TaskFailedError, WaitTimeoutError
from ..models import TaskStatus
from ._assets import Assets
from ._paging import TimeArg, page_query, walk_pages
from ._streams import ProducerStream
from ._transport import Transport
from ._v2_http import get, post_json
from ._v2_media import resolve_files
from ._v2_watch import V2StatusUpdate, watch_many_v2
from ._watch import PAGE_LIMIT

__all__ = ["EmbedV2Tasks", "V2StatusCallback", "V2TaskHandle"]

#: Called with every status update; may be sync or async.
V2StatusCallback = Callable[[V2Task], None | Awaitable[None]]


def _task_path(task_id: str) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string")
    return f"{TASKS_PATH}/{quote(task_id, safe='')}"


@attrs.frozen
class V2TaskHandle:
    """A created v2 task bound to its client: ``await handle.wait()``."""

    id: str
    _tasks: EmbedV2Tasks = attrs.field(repr=False, eq=False)
    #: ``embedding_dimension`` the server reported at create (marengo3.5 only).
    embedding_dimension: int | None = None
    #: The asset this create uploaded for a large local file (yours: delete it with
    #: ``client.assets.delete`` once the task is done), else ``None``.
    uploaded_asset_id: str | None = None

    async def retrieve(self) -> V2Task:
        return await self._tasks.retrieve(self.id)

    def wait_for_done(
        self,
        *,
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: V2StatusCallback | None = None,
        max_interval: float | None = None,
    ) -> AsyncIterator[V2Task]:
        return self._tasks.wait_for_done(
            self.id,
            sleep_interval=sleep_interval,
            timeout=timeout,
            callback=callback,
            max_interval=max_interval,
        )

    async def wait(
        self,
        *,
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: V2StatusCallback | None = None,
        raise_on_failure: bool = True,
    ) -> V2Task:
        return await self._tasks.wait(
            self.id,
            sleep_interval=sleep_interval,
            timeout=timeout,
            callback=callback,
            raise_on_failure=raise_on_failure,
        )


class EmbedV2Tasks:
    """``/embed-v2/tasks`` on the client's one session."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def handle(self, task_id: str) -> V2TaskHandle:
        """A handle for a task created elsewhere (an earlier run, another SDK)."""
        return V2TaskHandle(task_id, self)

    async def create(
        self,
        item: TaskInput,
        *,
        model_name: ModelName | str = ModelName.MARENGO_3_0,
        embedding_dimension: int | None = None,
        embedding_uncertainty: bool | None = None,
        idempotency_key: str | None = None,
    ) -> V2TaskHandle:
        """Start embedding ``item`` (:class:`~aioembed.v2.VideoInput`, ``AudioInput``,
        ``ImageInput`` or ``DocumentInput``) and return a handle.

        A :meth:`MediaSource.file` path is sent inline as base64 when small enough
        (36 MB video/audio, 32 MB images); a larger one first goes up as an asset
        (``client.assets.upload``: direct or multipart, resumable, ``ready`` before
        use; :class:`~aioembed.AssetFailedError` if the server cannot read it) that
        the task then names: ``handle.uploaded_asset_id``. The body is checked before sending with the server's own rules:
        :class:`~aioembed.ParameterError` with the server's ``code``, message and
        ``parameter`` (the JSON path). An ``Idempotency-Key`` is sent (generated
        unless given) so a retried create never makes a second task.
        """
        uploaded: list[str] = []

        async def upload(path: Path, file_type: str) -> str:
            asset = await Assets(self._t).upload(path, file_type=file_type)
            uploaded.append(asset.id)
            return asset.id

        resolved = await resolve_files(item, upload=upload)
        body = task_body(
            model_name,
            resolved,  # type: ignore[arg-type]
            embedding_dimension=embedding_dimension,
            embedding_uncertainty=embedding_uncertainty,
        )
        check_task_body(body)
        if idempotency_key is None and self._t.retry.idempotency_keys:
            idempotency_key = uuid.uuid4().hex
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        created = await post_json(
            self._t, TASKS_PATH, body, TaskCreated, idempotent=headers is not None, headers=headers
        )
        dim = created.metadata.embedding_dimension if created.metadata is not None else None
        return V2TaskHandle(created.id, self, dim, uploaded[0] if uploaded else None)

    async def retrieve(self, task_id: str) -> V2Task:
        """Status, metadata, and ``data`` (the vectors, float32) once ``ready``."""
        return await get(self._t, _task_path(task_id), V2Task)

    async def list_page(
        self,
        *,
        page: int = 1,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: TaskStatus | str | None = None,
    ) -> V2TaskPage:
        """One page of tasks, newest first (items v1-shaped, without vectors)."""
        params = page_query(page, page_limit, started_at, ended_at)
        if status is not None:
            params.append(("status", str(status)))
        return await get(self._t, TASKS_PATH, V2TaskPage, params)

    def list(
        self,
        *,
        page_limit: int = 10,
        started_at: TimeArg = None,
        ended_at: TimeArg = None,
        status: TaskStatus | str | None = None,
    ) -> AsyncGenerator[TaskSummary, None]:
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
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: V2StatusCallback | None = None,
        max_interval: float | None = None,
        outage_budget: float = 300.0,
    ) -> AsyncIterator[V2Task]:
        """Yield every status, the first at once, until ``ready`` or ``failed``.

        Polls every ``sleep_interval`` s, stretching 1.5x per poll (with jitter) up
        to ``max_interval`` (default 4 x ``sleep_interval``). ``timeout`` (seconds)
        bounds the whole wait: :class:`~aioembed.WaitTimeoutError`. The last item
        of a ``ready`` task carries the vectors. Transient errors that outlast the
        transport's retries (a server restarting: refused connections, 5xx, 429)
        are waited out for up to ``outage_budget`` s of continuous failure, then
        raised; 400/401/404 are raised at once. Polling happens only while the
        caller iterates; abandoning the loop leaves nothing running.
        """
        if sleep_interval <= 0:
            raise ValueError("sleep_interval must be positive")
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = max(max_interval if max_interval is not None else 4 * sleep_interval, sleep_interval)
        interval = sleep_interval
        failing_since: float | None = None
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(task_id, timeout or 0.0)
            current: V2Task | None = None
            with anyio.move_on_after(remaining) as scope:
                try:
                    current = await self.retrieve(task_id)
                except AioEmbedError as e:
                    if not is_transient(e):
                        raise
                    now = time.monotonic()
                    failing_since = now if failing_since is None else failing_since
                    if now - failing_since >= outage_budget:
                        raise
            if scope.cancelled_caught:
                raise WaitTimeoutError(task_id, timeout or 0.0)
            if current is None:  # riding out an outage: poll again after the pause
                await self._pause(interval, deadline)
                interval = min(interval * 1.5, cap)
                continue
            failing_since = None
            if callback is not None:
                result = callback(current)
                if inspect.isawaitable(result):
                    await result
            yield current
            if current.status.is_terminal:
                return
            await self._pause(interval, deadline)
            interval = min(interval * 1.5, cap)

    @staticmethod
    async def _pause(interval: float, deadline: float | None) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        pause = interval * random.uniform(0.9, 1.1)
        await anyio.sleep(pause if remaining is None else max(0.0, min(pause, remaining)))

    async def wait(
        self,
        task_id: str,
        *,
        sleep_interval: float = 5.0,
        timeout: float | None = None,
        callback: V2StatusCallback | None = None,
        raise_on_failure: bool = True,
    ) -> V2Task:
        """The final task. :class:`~aioembed.TaskFailedError` (carrying the task's
        ``error``, whose ``message`` says why) for a ``failed`` one unless
        ``raise_on_failure`` is false; :class:`~aioembed.WaitTimeoutError`."""
        final: V2Task | None = None
        async for final in self.wait_for_done(
            task_id, sleep_interval=sleep_interval, timeout=timeout, callback=callback
        ):
            pass
        assert final is not None  # the generator yields at least once or raises
        if raise_on_failure and final.status is TaskStatus.FAILED:
            raise TaskFailedError(task_id, final.error)
        return final

    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        sleep_interval: float = 1.0,
        max_interval: float = 10.0,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[V2StatusUpdate]:
        """Status updates for many tasks from shared list polls, not one poll per task.

        Use as ``async with tasks.watch_many(ids) as updates: async for u in updates``.
        Each task yields its first status, every change, then one ``final`` update with
        the retrieved task (vectors included when ``ready``) or an error such as
        :class:`~aioembed.WaitTimeoutError`. ``started_at`` (no later than the oldest
        task's creation) narrows each poll; transient errors are ridden out as v1's.
        """

        def processing() -> AsyncIterator[TaskSummary]:
            return self.list(page_limit=PAGE_LIMIT, status="processing", started_at=started_at)

        return watch_many_v2(
            processing,
            self.retrieve,
            task_ids,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
        )
