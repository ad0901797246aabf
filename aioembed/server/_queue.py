"""Which task runs next, and who is running it: the :class:`TaskQueue` seam.

The queue holds task ids only; the :class:`~._store.Store` holds the tasks. A
consumer *claims* a task and gets a :class:`Lease` on it for a while; it keeps
the lease alive with :meth:`~TaskQueue.heartbeat` and ends it with
:meth:`~TaskQueue.complete` or :meth:`~TaskQueue.fail`. Every lease carries a
fencing token: once a lease has expired and the task was claimed again, the old
holder's heartbeat, complete and fail raise :class:`LeaseLost`, so a consumer
that stalled (a paused VM, a partitioned process) cannot finish a task someone
else now owns. :meth:`~TaskQueue.reclaim_expired` makes expired tasks claimable.

These rules are written for several processes sharing one queue (a database
table with ``SELECT … FOR UPDATE SKIP LOCKED`` and a token column implements
them as they stand); :class:`InProcessQueue` implements them in memory for one
server process. ``tests/test_conformance.py`` holds every implementation to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

import attrs

__all__ = ["InProcessQueue", "Lease", "LeaseLost", "TaskQueue"]


class LeaseLost(Exception):
    """The lease expired and was taken over (or the task is no longer leased)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(f"lease {lease.token} on task {lease.task_id} is no longer held")
        self.lease = lease


@attrs.frozen
class Lease:
    """A claim on ``task_id`` until ``expires`` (the queue's clock, seconds)."""

    task_id: str
    token: int
    expires: float


class TaskQueue(Protocol):
    """Task ids waiting to run, and leases on the ones running."""

    async def submit(self, task_id: str, *, delay: float = 0.0) -> None:
        """Queue ``task_id`` to be claimable after ``delay`` seconds; a task already
        queued or leased is left as it is (submitting is idempotent)."""
        ...

    async def claim(self, *, lease: float, wait: float | None = None) -> Lease | None:
        """The oldest claimable task, leased for ``lease`` seconds; waits up to ``wait``
        seconds for one (forever when ``None``), then returns ``None``."""
        ...

    async def heartbeat(self, lease: Lease, *, extend: float) -> Lease:
        """Extend a held lease to ``extend`` seconds from now; raises :class:`LeaseLost`."""
        ...

    async def complete(self, lease: Lease) -> None:
        """The task is done: forget it. Raises :class:`LeaseLost` for a stale lease."""
        ...

    async def fail(self, lease: Lease, *, retry_in: float | None) -> None:
        """Give the task up: queue it again after ``retry_in`` seconds, or forget it
        (``None``). Raises :class:`LeaseLost` for a stale lease."""
        ...

    async def reclaim_expired(self) -> int:
        """Queue again every task whose lease expired; returns how many."""
        ...

    async def counts(self) -> dict[str, int]:
        """``queued`` (claimable now), ``delayed`` and ``leased`` task counts."""
        ...


class InProcessQueue:
    """:class:`TaskQueue` in memory, for one server process (the store resubmits
    unfinished tasks at start-up, so nothing durable lives here).

    ``clock`` (seconds) is injectable so lease expiry can be tested without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._order = itertools.count()
        self._tokens = itertools.count(1)
        #: (ready_at, submission order, task_id): claimable once ready_at has passed.
        self._waiting: list[tuple[float, int, str]] = []
        self._queued: set[str] = set()
        self._leases: dict[str, Lease] = {}
        self._changed = asyncio.Condition()

    async def submit(self, task_id: str, *, delay: float = 0.0) -> None:
        if task_id in self._queued or task_id in self._leases:
            return
        self._queued.add(task_id)
        heapq.heappush(self._waiting, (self._clock() + delay, next(self._order), task_id))
        async with self._changed:
            self._changed.notify_all()

    def _take(self, lease: float) -> Lease | None:
        if not self._waiting or self._waiting[0][0] > self._clock():
            return None
        _, _, task_id = heapq.heappop(self._waiting)
        self._queued.discard(task_id)
        held = Lease(task_id, next(self._tokens), self._clock() + lease)
        self._leases[task_id] = held
        return held

    def _next_due(self) -> float | None:
        return self._waiting[0][0] - self._clock() if self._waiting else None

    async def claim(self, *, lease: float, wait: float | None = None) -> Lease | None:
        deadline = None if wait is None else self._clock() + wait
        async with self._changed:
            while (held := self._take(lease)) is None:
                timeout = self._next_due()
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    timeout = left if timeout is None else min(timeout, left)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait(), None if timeout is None else max(0.0, timeout)
                    )
            return held

    def _held(self, lease: Lease) -> Lease:
        current = self._leases.get(lease.task_id)
        if current is None or current.token != lease.token or current.expires < self._clock():
            raise LeaseLost(lease)
        return current

    async def heartbeat(self, lease: Lease, *, extend: float) -> Lease:
        current = attrs.evolve(self._held(lease), expires=self._clock() + extend)
        self._leases[lease.task_id] = current
        return current

    async def complete(self, lease: Lease) -> None:
        self._held(lease)
        del self._leases[lease.task_id]

    async def fail(self, lease: Lease, *, retry_in: float | None) -> None:
        self._held(lease)
        del self._leases[lease.task_id]
        if retry_in is not None:
            await self.submit(lease.task_id, delay=retry_in)

    async def reclaim_expired(self) -> int:
        now = self._clock()
        expired = [t for t, held in self._leases.items() if held.expires < now]
        for task_id in expired:
            del self._leases[task_id]
            await self.submit(task_id)
        return len(expired)

    async def counts(self) -> dict[str, int]:
        now = self._clock()
        due = sum(1 for ready_at, _, _ in self._waiting if ready_at <= now)
        return {
            "queued": due,
            "delayed": len(self._waiting) - due,
            "leased": len(self._leases),
        }
