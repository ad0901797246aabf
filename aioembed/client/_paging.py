"""Paged lists: the query the task lists send, and the one stopping rule for every walk.

Both contracts (v1 ``GET /embed/tasks``; v2's tasks, assets and uploads lists) say the
official pagers stop only on an empty page, and a page past the end answers ``200``
with ``data: []``. ``page_info`` only saves that last request: the page ``total_page``
names is the last one asked for. A page without ``page_info`` says nothing about the
end, so the walk goes on to the empty page; stopping there would drop later pages.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from .._wire import format_datetime
from ..models import PageInfo

__all__ = ["TimeArg", "page_query", "walk_pages"]

#: A ``started_at`` / ``ended_at`` filter: a datetime, or RFC 3339 text sent as given.
TimeArg = datetime | str | None

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


def page_query(
    page: int, page_limit: int, started_at: TimeArg, ended_at: TimeArg
) -> list[tuple[str, str]]:
    """The query both task lists start with: the page, then the ``created_at`` window."""
    params = [("page", str(page)), ("page_limit", str(page_limit))]
    for key, value in (("started_at", started_at), ("ended_at", ended_at)):
        if isinstance(value, datetime):
            value = format_datetime(value)
        if value is not None:
            params.append((key, value))
    return params
