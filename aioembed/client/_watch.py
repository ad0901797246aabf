"""Watching many tasks at a cost that does not grow as one request per task per round.

Each round pages through the *processing* tasks with the list endpoint (50 per
request). A watched task missing from that list has probably finished: when
several have, the terminal tasks are paged through too (never more pages than
finished tasks), and only those still unaccounted for are asked about one by
one. So a round costs ``ceil(processing / 50)`` requests plus at most one per
task that finished since the last round, usually far fewer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing, suppress
from datetime import UTC, datetime, timedelta

import anyio
import attrs

from .._retry import Backoff, is_transient
from ..errors import AioEmbedError, WaitTimeoutError
from ..models import EmbedTask

__all__ = ["RoundReport", "StatusUpdate", "StatusWatcher"]

#: What :meth:`StatusWatcher._list_round` returns when a watch's deadline came first.
_DEADLINE = object()
#: The list endpoint's largest page.
PAGE_LIMIT = 50
#: Tolerated clock difference between us and the server for the ``started_at`` filter.
CLOCK_MARGIN = timedelta(minutes=5)

Resolve = Callable[[str], Awaitable[EmbedTask]]
ListProcessing = Callable[[datetime | None], AsyncGenerator[EmbedTask, None]]


@attrs.frozen
class StatusUpdate:
    """One change seen by ``watch_many``: a new status or progress, or the watch's end.

    ``final`` is true exactly once per task: with a terminal ``task`` or an ``error``
    (e.g. :class:`~aioembed.WaitTimeoutError` past a deadline, or a 404).
    """

    task_id: str
    task: EmbedTask | None
    error: AioEmbedError | None = None
    final: bool = False


@attrs.define
class RoundReport:
    """What one polling round did to the pending watches."""

    #: Watches whose status or progress changed (a first sighting counts).
    updated: int = 0
    #: Watches ended by a terminal task or by an error that is not ridden out.
    finished: int = 0
    #: Watches ended by their deadline (:class:`~aioembed.WaitTimeoutError`).
    expired: int = 0
    #: A request failed transiently; the watches it concerned wait for the next round.
    transient: bool = False

    @property
    def quiet(self) -> bool:
        """Nothing new: the next round may come later (the interval stretches)."""
        return not (self.updated or self.finished or self.expired)


@attrs.define(eq=False)
class _Watch:
    task_id: str
    deadline: float | None
    timeout: float | None
    done: anyio.Event = attrs.Factory(anyio.Event)
    last: EmbedTask | None = None
    error: AioEmbedError | None = None

    async def result(self) -> EmbedTask:
        """The terminal task; raises the watch's error (timeout, 404, ...)."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.last is not None
        return self.last


class StatusWatcher:
    """Polls for many tasks in shared rounds; :meth:`run` is the only poller.

    ``resolve(task_id)`` is the individual fetch for tasks that left the
    processing list (``status``, or ``retrieve`` when the caller wants the
    embeddings anyway); ``list_terminal``, when given, lists finished tasks so
    several can be resolved per request. ``on_update`` sees every change.
    Transient errors (transport, 5xx, 429) that outlast the transport's own
    retries, as while a server restarts, leave the watches waiting (deadlines
    still hold) for up to ``outage_budget`` seconds of continuous failure; any
    other error ends the watches it concerns. The interval starts
    at ``sleep_interval`` and stretches 1.3x per quiet round up to
    ``max_interval``, with jitter (:class:`~aioembed._retry.Backoff`); any
    news resets it.
    """

    def __init__(
        self,
        list_processing: ListProcessing,
        resolve: Resolve,
        *,
        sleep_interval: float = 1.0,
        max_interval: float = 10.0,
        concurrency: int = 8,
        on_update: Callable[[StatusUpdate], Awaitable[None]] | None = None,
        list_terminal: ListProcessing | None = None,
        outage_budget: float = 300.0,
    ) -> None:
        self._list = list_processing
        self._list_terminal = list_terminal
        self._resolve = resolve
        self._min = sleep_interval
        self._max = max(max_interval, sleep_interval)
        self._limiter = anyio.CapacityLimiter(concurrency)
        self._on_update = on_update
        self._watches: dict[str, _Watch] = {}
        self._since: datetime | None = None
        self._wakeup = anyio.Event()
        self._closed = False
        self._outage_budget = outage_budget
        self._failing_since: float | None = None
        self.rounds = 0

    def watch(self, task_id: str, *, timeout: float | None = None) -> _Watch:
        """Start (or join) watching ``task_id``; await ``.result()`` for its final state."""
        existing = self._watches.get(task_id)
        if existing is not None and not existing.done.is_set():
            return existing
        deadline = None if timeout is None else time.monotonic() + timeout
        w = self._watches[task_id] = _Watch(task_id, deadline, timeout)
        since = datetime.now(UTC) - CLOCK_MARGIN
        self._since = since if self._since is None else min(self._since, since)
        self._wakeup.set()
        return w

    def watch_all(
        self, task_ids: Iterable[str], *, task_timeout: float | None, timeout: float | None
    ) -> None:
        """Watch each of ``task_ids`` for ``task_timeout`` s, none past the whole
        ``timeout`` (s; ``None``: no bound), then :meth:`close`: the set is complete."""
        per_task = task_timeout if timeout is None else min(task_timeout or timeout, timeout)
        for task_id in task_ids:
            self.watch(task_id, timeout=per_task)
        self.close()

    def close(self) -> None:
        """Let :meth:`run` return once nothing is left to watch."""
        self._closed = True
        self._wakeup.set()

    def _pending(self) -> list[_Watch]:
        return [w for w in self._watches.values() if not w.done.is_set()]

    def _time_left(self) -> float | None:
        """Seconds to the earliest pending deadline (``None``: no deadline). Requests are
        bounded by it, so a stalled server cannot hold a watch past its deadline."""
        deadlines = [w.deadline for w in self._pending() if w.deadline is not None]
        return _left(min(deadlines)) if deadlines else None

    async def run(self) -> None:
        """Poll in rounds until :meth:`close` was called and nothing is left to watch."""
        pace = Backoff(self._min, self._max, factor=1.3, jitter=0.2)
        quiet_rounds = 0
        while True:
            if not self._pending():
                if self._closed:
                    return
                await self._wakeup.wait()
                self._wakeup = anyio.Event()
                quiet_rounds = 0
                continue
            report = await self.poll_round()
            quiet_rounds = quiet_rounds + 1 if report.quiet else 0
            if self._pending():
                pause = pace.delay(quiet_rounds + 1)
                left = self._time_left()
                await anyio.sleep(pause if left is None else min(pause, left))

    async def poll_round(self) -> RoundReport:
        """One round: list the processing tasks, then resolve the watches that left the list.

        Every pending watch ends up updated, finished, expired or still waiting;
        the report counts which, so :meth:`run` can pace the next round.
        """
        self.rounds += 1
        report = RoundReport()
        listed = await self._list_round()
        if listed is _DEADLINE:
            report.expired = await self._expire()  # a deadline came first; nothing learned
            return report
        if isinstance(listed, AioEmbedError):
            if self._ride_out(listed):
                report.transient = True  # the list is asked again next round
            else:
                # Not transient, or down too long: a poll loop must not swallow the error.
                for w in self._pending():
                    await self._finish(w, None, listed)
                    report.finished += 1
            report.expired = await self._expire()
            return report
        assert isinstance(listed, dict)
        gone: list[_Watch] = []
        for w in self._pending():
            seen = listed.get(w.task_id)
            if seen is None:
                gone.append(w)
            elif await self._update(w, seen):
                report.updated += 1
        if len(gone) > 1 and self._list_terminal is not None:
            remaining = await self._resolve_listed(gone)
            report.finished += len(gone) - len(remaining)
            gone = remaining
        async with anyio.create_task_group() as tg:
            for w in gone:
                tg.start_soon(self._check, w, report)
        if not report.transient:
            self._failing_since = None
        report.expired = await self._expire()
        return report

    async def _list_round(self) -> dict[str, EmbedTask] | AioEmbedError | object:
        """The processing tasks by id, the error that stopped the listing, or
        :data:`_DEADLINE` when the earliest watch deadline came first."""
        processing: dict[str, EmbedTask] = {}
        with anyio.move_on_after(self._time_left()) as listing:
            try:
                async for task in self._list(self._since):
                    processing[task.id] = task
            except AioEmbedError as e:
                return e
        return _DEADLINE if listing.cancelled_caught else processing

    async def _check(self, w: _Watch, report: RoundReport) -> None:
        """Ask about one watch that left the processing list."""
        task: EmbedTask | None = None
        error: AioEmbedError | None = None
        with anyio.move_on_after(_left(w.deadline)):
            async with self._limiter:
                try:
                    task = await self._resolve(w.task_id)
                except AioEmbedError as e:
                    error = e
        if error is not None:
            if self._ride_out(error):
                report.transient = True  # asked again next round
            else:
                await self._finish(w, None, error)
                report.finished += 1
        elif task is None:
            return  # its deadline came first: expired at the round's end
        elif task.status.is_terminal:
            await self._finish(w, task)
            report.finished += 1
        elif await self._update(w, task):
            report.updated += 1

    def _ride_out(self, error: AioEmbedError) -> bool:
        """Whether to keep waiting through ``error`` (transient, outage within budget)."""
        if not is_transient(error):
            return False
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        return now - self._failing_since < self._outage_budget

    async def _expire(self) -> int:
        """Finish the watches whose deadline has passed with :class:`WaitTimeoutError`;
        returns how many."""
        now = time.monotonic()
        expired = 0
        for w in self._pending():
            if w.deadline is not None and now >= w.deadline:
                await self._finish(w, w.last, WaitTimeoutError(w.task_id, w.timeout or 0.0))
                expired += 1
        return expired

    async def _resolve_listed(self, gone: list[_Watch]) -> list[_Watch]:
        """Finish what the terminal list shows; return the watches it did not.

        On an error or a deadline the rest are left to be asked one by one.
        """
        assert self._list_terminal is not None
        wanted = {w.task_id: w for w in gone}
        found: list[tuple[_Watch, EmbedTask]] = []
        budget = PAGE_LIMIT * len(gone)  # cost no more requests than asking one by one
        with suppress(AioEmbedError), anyio.move_on_after(self._time_left()):
            async with aclosing(self._list_terminal(self._since)) as listed:
                async for task in listed:
                    budget -= 1
                    w = wanted.pop(task.id, None)
                    if w is not None:
                        found.append((w, task))
                    if not wanted or budget <= 0:
                        break
        # Updates go out after the requests, out of reach of the deadline's cancellation.
        for w, task in found:
            await self._finish(w, task)
        return [w for w in gone if not w.done.is_set()]

    async def _update(self, w: _Watch, task: EmbedTask) -> bool:
        old = w.last
        w.last = task
        if old is not None and old.status == task.status and old.progress == task.progress:
            return False
        if self._on_update is not None:
            await self._on_update(StatusUpdate(w.task_id, task))
        return True

    async def _finish(
        self, w: _Watch, task: EmbedTask | None, error: AioEmbedError | None = None
    ) -> None:
        w.last = task or w.last
        w.error = error
        w.done.set()
        if self._on_update is not None:
            await self._on_update(StatusUpdate(w.task_id, task, error, final=True))


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
