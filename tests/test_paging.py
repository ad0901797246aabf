"""The one paging rule (``client/_paging.py``) against our server, v1 and v2 task lists.

The contracts: official pagers stop only on an empty page; ``page_info.total_page``
lets ours skip that request. A walk must neither ask past ``total_page`` nor stop
early when a page comes without ``page_info``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest

from aioembed import AsyncClient, RetryPolicy
from aioembed.client._paging import walk_pages
from aioembed.models import TaskPage
from aioembed.v2 import MediaSource, VideoInput

V1_TASKS = "/v1.3/embed/tasks"
V2_TASKS = "/v1.3/embed-v2/tasks"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.2, budget=10)


@pytest.fixture
async def client(live_server: Any, video_factory: Any) -> AsyncIterator[AsyncClient]:
    """A client on a server holding four tasks per API version: two full pages of two."""
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url, retry=FAST) as c:
        video = video_factory(duration=5, seed=17)
        v2_input = VideoInput(MediaSource.file(video), embedding_option=["visual"])
        for _ in range(4):
            await c.embed.tasks.create(video_file=video)
            await c.embed.v2.tasks.create(v2_input)
        yield c


async def test_walks_stop_on_the_last_page_without_asking_past_it(
    client: AsyncClient, live_server: Any
) -> None:
    before = live_server.counts(V1_TASKS, "GET")
    assert len([t async for t in client.embed.tasks.list(page_limit=2)]) == 4
    assert live_server.counts(V1_TASKS, "GET") - before == 2  # pages 1 and 2, no empty page 3
    before = live_server.counts(V2_TASKS, "GET")
    assert len([t async for t in client.embed.v2.tasks.list(page_limit=2)]) == 4
    assert live_server.counts(V2_TASKS, "GET") - before == 2


async def test_a_page_without_page_info_walks_on_to_the_empty_page(
    client: AsyncClient, live_server: Any
) -> None:
    async def bare(page: int) -> TaskPage:
        answer = await client.embed.tasks.list_page(page=page, page_limit=2)
        return attrs.evolve(answer, page_info=None)

    before = live_server.counts(V1_TASKS, "GET")
    assert len([t async for t in walk_pages(bare)]) == 4
    assert live_server.counts(V1_TASKS, "GET") - before == 3  # the empty page 3 ends it
