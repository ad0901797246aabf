"""Fire-and-forget jobs a service starts (asset probes, upload joins) and cancels at close.

The event loop keeps only weak references to tasks, so a service holds its jobs
until they finish; closing cancels those still running and waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["BackgroundJobs"]


class BackgroundJobs:
    """The running jobs of one service."""

    def __init__(self) -> None:
        self._jobs: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def close(self) -> None:
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
