"""Walking a paged list: the one stopping rule for every list the client pages through.

Both contracts (v1 ``GET /embed/tasks``; v2's tasks, assets and uploads lists) say the
official pagers stop only on an empty page, and a page past the end answers ``200``
with ``data: []``. ``page_info`` only saves that last request: the page ``total_page``
names is the last one asked for. A page without ``page_info`` says nothing about the
end, so the walk goes on to the empty page; stopping there would drop later pages.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from ..models import PageInfo

__all__ = ["walk_pages"]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Page(Protocol[T_co]):
    """What a list answer holds: its items and, if the server sent it, ``page_info``."""

    @property
    def data(self) -> Sequence[T_co]: ...

    @property
    def page_info(self) -> PageInfo | None: ...


async def walk_pages(fetch: Callable[[int], Awaitable[Page[T]]]) -> AsyncGenerator[T, None]:
    """Every item of ``fetch(1)``, ``fetch(2)``, … until an empty or the last page."""
    page = 1
    while True:
        result = await fetch(page)
        for item in result.data:
            yield item
        info = result.page_info
        if not result.data or (info is not None and page >= info.total_page):
            return
        page += 1
