"""``client.embed.v2.tasks.watch_many``: many v2 tasks watched by v1's one shared poller.

The :class:`~aioembed.client._watch.StatusWatcher` pages through the *processing*
tasks of the v2 list (50 per request) and asks about a task individually only
once it has left that list, so a round costs ``ceil(processing / 50)`` requests
plus one per task that finished. The watcher speaks v1's task model; this module
hands it the v2 list items and retrieved tasks in that shape (id, status, error)
and keeps the real :class:`~aioembed.v2.V2Task` (with its vectors) for the
updates it yields.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime

import attrs
from anyio.streams.memory import MemoryObjectSendStream

from ..contract.v2 import TaskSummary, V2Task
from ..errors import AioEmbedError
from ..models import EmbedTask, TaskError
from ._streams import ProducerStream
from ._watch import StatusUpdate, StatusWatcher

__all__ = ["V2StatusUpdate", "watch_many_v2"]


@attrs.frozen
class V2StatusUpdate:
    """A change seen by ``watch_many``: ``task`` is a list item while processing and the
    retrieved :class:`V2Task` (vectors included when ``ready``) on the ``final`` update,
    unless the watch ended with an ``error`` (a deadline, a 404)."""

    task_id: str
    task: V2Task | TaskSummary | None
    error: AioEmbedError | None = None
    final: bool = False


def _as_v1(task: V2Task | TaskSummary) -> EmbedTask:
    error = None
    if task.error is not None:
        error = TaskError(task.error.code or "failed", task.error.message)
    return EmbedTask(id=task.id, status=task.status, created_at=task.created_at, error=error)


#: ``since -> the processing tasks`` (the v2 list, filtered) and ``task_id -> the task``.
ListProcessing = Callable[[], AsyncIterator[TaskSummary]]
Retrieve = Callable[[str], Awaitable[V2Task]]


def watch_many_v2(
    list_processing: ListProcessing,
    retrieve: Retrieve,
    task_ids: Iterable[str],
    *,
    sleep_interval: float,
    max_interval: float,
    task_timeout: float | None,
    timeout: float | None,
) -> ProducerStream[V2StatusUpdate]:
    ids = list(dict.fromkeys(task_ids))
    seen: dict[str, V2Task | TaskSummary] = {}

    async def produce(send: MemoryObjectSendStream[V2StatusUpdate]) -> None:
        async def processing(since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
            async for item in list_processing():
                seen[item.id] = item
                yield _as_v1(item)

        async def resolve(task_id: str) -> EmbedTask:
            task = await retrieve(task_id)
            seen[task_id] = task
            return _as_v1(task)

        async def relay(update: StatusUpdate) -> None:
            task = seen.get(update.task_id) if update.task is not None else None
            await send.send(V2StatusUpdate(update.task_id, task, update.error, update.final))
            if update.final:
                seen.pop(update.task_id, None)

        watcher = StatusWatcher(
            processing,
            resolve,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            on_update=relay,
        )
        watcher.watch_all(ids, task_timeout=task_timeout, timeout=timeout)
        await watcher.run()

    return ProducerStream(produce, buffer=max(16, len(ids)))
