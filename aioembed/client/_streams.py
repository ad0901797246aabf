"""Background producers read through ``async with ... as stream: async for item in stream``.

A task group may not be held open across an async generator's ``yield`` (the
generator can be finalised in another task), so iterators that need
background work are context managers: leaving the block early cancels the work,
and a producer's error is raised there, unwrapped from its exception group.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

T = TypeVar("T")

__all__ = ["ProducerStream"]

Producer = Callable[[MemoryObjectSendStream[T]], Awaitable[None]]


class ProducerStream(Generic[T]):
    """Runs ``produce(send)`` in a task group and iterates what it sends."""

    def __init__(self, produce: Producer[T], *, buffer: int = 0) -> None:
        self._produce = produce
        self._send, self._recv = anyio.create_memory_object_stream[T](buffer)
        self._tg: TaskGroup | None = None

    async def _run(self) -> None:
        async with self._send:
            await self._produce(self._send)

    async def __aenter__(self) -> ProducerStream[T]:
        if self._tg is not None:
            raise RuntimeError("this stream was already entered")
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        # Leaving the block, for whatever reason, stops the producer.
        self._tg.cancel_scope.cancel()
        self._recv.close()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            sole = _sole(group)
            if sole is group:
                raise
            raise sole from None

    def __aiter__(self) -> ProducerStream[T]:
        return self

    async def __anext__(self) -> T:
        if self._tg is None:
            raise RuntimeError("use `async with` around this stream before iterating it")
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups (task groups inside task
    groups each wrap it once), or the group itself when it holds several."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
