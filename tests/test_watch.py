"""Fast tier: the watcher's round logic over an in-memory task service (no HTTP)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator
from datetime import datetime

import pytest

from aioembed import (
    NotFoundError,
    ServerError,
    TaskStatus,
    TransportError,
    WaitTimeoutError,
)
from aioembed.client._watch import StatusUpdate, StatusWatcher
from aioembed.errors import AioEmbedError
from aioembed.models import EmbedTask, TaskProgress


class Service:
    """Tasks in a dict, behind the three callables the watcher is built on."""

    def __init__(self) -> None:
        self.tasks: dict[str, EmbedTask] = {}
        self.list_error: AioEmbedError | None = None
        self.resolve_error: AioEmbedError | None = None
        self.calls: Counter[str] = Counter()

    def set(self, task_id: str, status: str, done: int | None = None) -> None:
        progress = TaskProgress(done, 10) if done is not None else None
        self.tasks[task_id] = EmbedTask(task_id, TaskStatus(status), progress=progress)

    async def _listing(self, wanted: set[TaskStatus]) -> AsyncGenerator[EmbedTask, None]:
        if self.list_error is not None:
            raise self.list_error
        for task in list(self.tasks.values()):
            if task.status in wanted:
                yield task

    def list_processing(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
        self.calls["list"] += 1
        return self._listing({TaskStatus.PROCESSING})

    def list_terminal(self, since: datetime | None) -> AsyncGenerator[EmbedTask, None]:
        self.calls["list_terminal"] += 1
        return self._listing({TaskStatus.READY, TaskStatus.FAILED})

    async def resolve(self, task_id: str) -> EmbedTask:
        self.calls["resolve"] += 1
        if self.resolve_error is not None:
            raise self.resolve_error
        if task_id not in self.tasks:
            raise NotFoundError("no such task", code="resource_not_exist")
        return self.tasks[task_id]


def watcher(service: Service, *, terminal: bool = False, outage_budget: float = 300.0) -> tuple[
    StatusWatcher, list[StatusUpdate]
]:
    seen: list[StatusUpdate] = []

    async def on_update(update: StatusUpdate) -> None:
        seen.append(update)

    w = StatusWatcher(
        service.list_processing,
        service.resolve,
        on_update=on_update,
        list_terminal=service.list_terminal if terminal else None,
        outage_budget=outage_budget,
    )
    return w, seen


async def test_first_sighting_is_news_then_rounds_are_quiet_until_progress() -> None:
    service = Service()
    service.set("a", "processing", done=1)
    w, seen = watcher(service)
    w.watch("a")
    first = await w.poll_round()
    assert (first.updated, first.finished, first.quiet) == (1, 0, False)
    second = await w.poll_round()
    assert second.quiet and not second.transient
    service.set("a", "processing", done=2)
    third = await w.poll_round()
    assert third.updated == 1 and not third.quiet
    assert [u.task.progress.clips_done for u in seen if u.task and u.task.progress] == [1, 2]
    assert service.calls == Counter(list=3)  # a task still listed is never asked about alone


async def test_a_task_that_left_the_list_is_resolved_and_finished() -> None:
    service = Service()
    service.set("a", "ready")
    w, seen = watcher(service)
    handle = w.watch("a")
    report = await w.poll_round()
    assert (report.finished, report.updated, report.expired) == (1, 0, 0)
    assert (await handle.result()).status is TaskStatus.READY
    assert seen[-1].final and service.calls["resolve"] == 1


async def test_several_finished_tasks_come_from_the_terminal_list() -> None:
    service = Service()
    for task_id in "abc":
        service.set(task_id, "ready")
    w, _ = watcher(service, terminal=True)
    handles = [w.watch(task_id) for task_id in "abc"]
    report = await w.poll_round()
    assert report.finished == 3
    assert service.calls == Counter(list=1, list_terminal=1)  # no per-task request
    assert [(await h.result()).id for h in handles] == ["a", "b", "c"]


async def test_not_found_ends_the_watch_with_its_error() -> None:
    service = Service()
    w, _ = watcher(service)
    handle = w.watch("missing")
    report = await w.poll_round()
    assert report.finished == 1 and not report.transient
    with pytest.raises(NotFoundError):
        await handle.result()


@pytest.mark.parametrize(
    "error",
    [ServerError("down", code="internal_error", status=503), TransportError("refused")],
    ids=["503", "refused"],
)
async def test_transient_errors_are_ridden_out_within_the_outage_budget(error: AioEmbedError) -> None:
    service = Service()
    service.set("a", "processing")
    w, _ = watcher(service)
    handle = w.watch("a")
    service.list_error = error
    report = await w.poll_round()
    assert report.transient and report.quiet and report.finished == 0
    assert not handle.done.is_set()
    service.list_error = None
    service.set("a", "ready")
    service.resolve_error = error  # the task's own fetch fails too: still waiting
    report = await w.poll_round()
    assert report.transient and not handle.done.is_set()
    service.resolve_error = None
    report = await w.poll_round()
    assert report.finished == 1 and (await handle.result()).status is TaskStatus.READY


async def test_an_outage_past_its_budget_ends_the_watches() -> None:
    service = Service()
    service.set("a", "processing")
    w, _ = watcher(service, outage_budget=0.0)
    handle = w.watch("a")
    service.list_error = ServerError("down", code="internal_error", status=503)
    report = await w.poll_round()
    assert report.finished == 1 and not report.transient
    with pytest.raises(ServerError):
        await handle.result()


async def test_a_passed_deadline_expires_the_watch() -> None:
    service = Service()
    service.set("a", "processing")
    w, seen = watcher(service)
    handle = w.watch("a", timeout=0)
    report = await w.poll_round()
    assert report.expired == 1 and not report.quiet
    with pytest.raises(WaitTimeoutError):
        await handle.result()
    assert seen[-1].final and isinstance(seen[-1].error, WaitTimeoutError)
