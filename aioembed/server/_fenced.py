"""Ending a task and releasing its lease in one transaction: the :class:`FencedStore` seam.

When the store and the queue share one database (PostgreSQL in operator mode),
a worker's result and the release of its lease commit together, fenced by the
lease's token: a worker whose lease was reclaimed and claimed by another writes
nothing (:class:`~._queue.LeaseLost`), so a task is completed exactly once even
when two workers ran it. Stores that cannot do this (SQLite beside an in-memory
queue, one process) are simply not ``FencedStore``; the dispatcher then writes
the result and completes the lease one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ._queue import Lease, TaskQueue
from ._store import SegmentRecord

__all__ = ["FencedStore", "fenced_store"]


@runtime_checkable
class FencedStore(Protocol):
    def fences(self, queue: TaskQueue) -> bool:
        """True when ``queue``'s leases live in this store's database."""
        ...

    async def finish_ready_fenced(
        self,
        lease: Lease,
        segments: Sequence[SegmentRecord],
        *,
        duration: float | None,
        result_meta: str | None = None,
    ) -> None:
        """``finish_ready`` and the lease's release, atomically; :class:`LeaseLost`
        (and nothing written) when ``lease``'s token no longer holds the task."""
        ...

    async def finish_failed_fenced(self, lease: Lease, code: str, message: str) -> None:
        """``finish_failed`` and the lease's release, atomically, fenced the same way."""
        ...


def fenced_store(store: object, queue: TaskQueue) -> FencedStore | None:
    """``store`` when it can end tasks fenced by ``queue``'s leases, else ``None``."""
    if isinstance(store, FencedStore) and store.fences(queue):
        return store
    return None
