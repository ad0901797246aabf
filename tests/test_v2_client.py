"""``client.embed.v2`` against the real server over loopback: tasks from files and URLs,
waits, the list pager, sync embeds, local checks before any byte, typed errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from aioembed import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    RateLimitError,
    RateLimits,
    RateLimitWindow,
    RetryPolicy,
    TaskFailedError,
    WaitTimeoutError,
)
from aioembed.server import RateLimit
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT
from aioembed.v2 import (
    AudioInput,
    DocumentInput,
    Fixed,
    ImageInput,
    MediaSource,
    MultiInput,
    MultiSource,
    TextImageInput,
    TimeBasedMetadata,
    VideoInput,
)

FAST = RetryPolicy(attempts=3, initial_delay=0.05, max_delay=0.5, budget=10)


@pytest.fixture
async def client(live_server: Any) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url, retry=FAST) as c:
        yield c


async def test_task_from_a_local_file(client: AsyncClient, video_factory: Any) -> None:
    video = video_factory(duration=8.0, seed=41)
    task = await client.embed.v2.tasks.create(
        VideoInput(
            MediaSource.file(video),
            segmentation=Fixed(4),
            embedding_option=["visual", "audio"],
            embedding_type=["separate_embedding", "fused_embedding"],
            time_based_metadata=[TimeBasedMetadata(1.0, 1.0, "kick-off")],
        ),
        model_name="marengo3.5",
        embedding_dimension=256,
    )
    assert task.embedding_dimension == 256
    seen = []
    async for status in task.wait_for_done(sleep_interval=0.1, timeout=120):
        seen.append(status.status.value)
    assert seen[-1] == "ready" and len(seen) >= 1
    result = await task.wait(sleep_interval=0.1, timeout=60)
    assert result.metadata is not None and result.metadata.input_type == "video"
    visual = result.matrix(option="visual", scope="clip")
    assert visual.shape == (2, 256) and visual.dtype == np.float32
    assert result.matrix(option="fused", scope="asset").shape == (1, 256)
    assert result.data is not None and isinstance(result.data[0].embedding, np.ndarray)
    assert result.usage is not None and result.usage.truncated is False


async def test_task_from_a_url_and_the_list_pager(
    client: AsyncClient, static_server: Any, video_factory: Any
) -> None:
    url = static_server.add(video_factory(duration=5.0, seed=42), "clip.mp4")
    handles = [
        await client.embed.v2.tasks.create(
            VideoInput(MediaSource.url(url), embedding_option=["visual"], embedding_scope=["asset"])
        )
        for _ in range(3)
    ]
    for h in handles:
        done = await h.wait(sleep_interval=0.1, timeout=120)
        assert done.metadata is not None and done.metadata.input_url == url  # type: ignore[union-attr]
    listed = [t async for t in client.embed.v2.tasks.list(page_limit=2)]
    assert [t.id for t in listed] == [h.id for h in reversed(handles)]
    assert all(t.video_embedding is not None for t in listed)
    page = await client.embed.v2.tasks.list_page(page=3, page_limit=2)
    assert page.data == []


async def test_failed_task_raises_with_its_message(
    client: AsyncClient, static_server: Any, video_factory: Any
) -> None:
    url = static_server.add(video_factory.file("not-a-video.mp4", b"hello" * 100))
    task = await client.embed.v2.tasks.create(VideoInput(MediaSource.url(url)))
    with pytest.raises(TaskFailedError) as info:
        await task.wait(sleep_interval=0.1, timeout=60)
    assert info.value.task_id == task.id
    assert "could not process your media" in info.value.error.message
    final = await task.wait(sleep_interval=0.1, raise_on_failure=False)
    assert final.status.value == "failed" and final.data is None


async def test_checked_before_any_byte_same_as_the_server(
    client: AsyncClient, live_server: Any, http: aiohttp.ClientSession
) -> None:
    bad = VideoInput(MediaSource.url("https://example.com/a.mp4"), segmentation=Fixed(11))
    with pytest.raises(ParameterError) as local:
        await client.embed.v2.tasks.create(bad)
    assert local.value.parameter == "video.segmentation.fixed.duration_sec"
    with pytest.raises(ParameterError) as dim:
        await client.embed.v2.tasks.create(bad, embedding_dimension=128)
    assert dim.value.parameter == "embedding_dimension"
    assert live_server.counts() == 0
    body = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {
            "media_source": {"url": "https://example.com/a.mp4"},
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 11}},
        },
    }
    async with http.post(
        live_server.url("embed-v2/tasks"), json=body, headers=live_server.headers
    ) as r:
        err = (await r.json())["error"]
    assert (r.status, err["code"], err["message"], err["details"]["parameter"]) == (
        400,
        local.value.code,
        local.value.message,
        local.value.parameter,
    )


async def test_large_local_file_needs_an_asset(client: AsyncClient, tmp_path: Path) -> None:
    """Sync embeds send a local file inline only (at most 36 MB): a larger one is refused
    before any read. (Tasks upload it as an asset: tests/test_v2_batch.py.)"""
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:
        f.truncate(36 * 1024 * 1024 + 1)  # sparse: nothing is written, nothing read
    with pytest.raises(PayloadTooLargeError) as info:
        await client.embed.v2.create(VideoInput(MediaSource.file(big)))
    assert info.value.code == "content_too_large" and "asset" in info.value.message
    assert info.value.parameter == "video.media_source"
    with pytest.raises(ParameterError):
        await client.embed.v2.tasks.create(VideoInput(MediaSource.file(tmp_path / "none.mp4")))


async def test_server_errors_are_typed(client: AsyncClient, live_server: Any) -> None:
    with pytest.raises(NotFoundError) as nf:
        await client.embed.v2.tasks.retrieve("0" * 24)
    assert nf.value.code == "resource_not_exist" and nf.value.request_id
    with pytest.raises(BadRequestError) as doc:
        await client.embed.v2.tasks.create(
            DocumentInput(MediaSource.url("https://example.com/a.pdf")), model_name="marengo3.5"
        )
    assert doc.value.message == "The local engine does not embed documents."
    assert doc.value.parameter == "document"
    with pytest.raises(BadRequestError) as asset:
        await client.embed.v2.tasks.create(VideoInput(MediaSource.asset("a" * 24)))
    assert asset.value.parameter == "video.media_source.asset_id"
    async with AsyncClient("wrong", base_url=live_server.base_url) as wrong:
        with pytest.raises(AuthenticationError):
            await wrong.embed.v2.tasks.retrieve("0" * 24)


async def test_wait_timeout(client: AsyncClient, video_factory: Any) -> None:
    task = await client.embed.v2.tasks.create(
        VideoInput(MediaSource.file(video_factory(duration=20, seed=43)))
    )
    with pytest.raises(WaitTimeoutError) as info:
        async for _ in task.wait_for_done(sleep_interval=5, timeout=0.3):
            pass
    assert info.value.task_id == task.id


async def test_sync_embeds(client: AsyncClient, video_factory: Any) -> None:
    text = await client.embed.v2.create("a red ball")
    assert text.metadata is None and text.array().shape == (512,)
    image = video_factory.image(seed=44)
    img = await client.embed.v2.create(ImageInput(MediaSource.file(image)))
    assert img.metadata is not None and img.metadata.input_type == "image"
    both = await client.embed.v2.create(TextImageInput(MediaSource.file(image), "a red ball"))
    assert both.metadata is not None and both.metadata.input_type == "text_image"
    audio = await client.embed.v2.create(
        AudioInput(
            MediaSource.file(video_factory.audio(duration=8, seed=45)), segmentation=Fixed(4)
        )
    )
    assert audio.matrix(scope="clip").shape[1] == 512
    video = await client.embed.v2.create(
        VideoInput(
            MediaSource.file(video_factory(duration=5, seed=46)), embedding_option=["visual"]
        )
    )
    assert video.select(scope="asset")[0].embedding_option == "visual"
    multi = await client.embed.v2.create(
        MultiInput("goal <@kit>", [MultiSource("image", MediaSource.file(image), "kit")]),
        model_name="marengo3.5",
        embedding_dimension=32,
    )
    assert multi.array().shape == (32,) and multi.usage is not None
    with pytest.raises(ParameterError) as wrong:
        await client.embed.v2.create("x", model_name="marengo3.5")
    assert wrong.value.parameter == "input_type"


def test_rate_limit_headers_parse_every_dimension() -> None:
    limits = RateLimits.from_headers(
        {
            "X-Ratelimit-Limit": "100",
            "X-Ratelimit-Remaining": "7",
            "x-ratelimit-duration-limit": "3600",
            "x-ratelimit-duration-remaining": "12.5",
            "x-ratelimit-duration-reset": "1795655517",
            "x-ratelimit-duration-color": "blue",
            "x-ratelimit-limit-bogus": "x",
            "content-type": "application/json",
        }
    )
    assert limits is not None and limits.requests == RateLimitWindow(limit=100, remaining=7)
    assert limits.duration == RateLimitWindow(limit=3600, remaining=12.5, reset=1795655517)
    assert set(limits.windows) == {"requests", "duration"}
    assert RateLimits.from_headers({"content-type": "text/plain"}) is None


async def test_rate_limits_seen_and_on_errors(live_server_factory: Any) -> None:
    srv = await live_server_factory(rate_limit=RateLimit(2, 60))
    no_retry = RetryPolicy(attempts=1)
    async with AsyncClient(srv.api_key, base_url=srv.base_url, retry=no_retry) as c:
        assert c.rate_limits is None
        with pytest.raises(NotFoundError):
            await c.embed.v2.tasks.retrieve("0" * 24)
        assert c.rate_limits is not None and c.rate_limits.requests is not None
        assert (c.rate_limits.requests.limit, c.rate_limits.requests.remaining) == (2, 1)
        await c.embed.v2.tasks.list_page()
        with pytest.raises(RateLimitError) as info:
            await c.embed.v2.tasks.list_page()
        limits = info.value.rate_limits
        assert limits is not None and limits.requests is not None
        assert limits.requests.remaining == 0 and info.value.retry_after
        assert c.rate_limits.requests.remaining == 0  # type: ignore[union-attr]


async def test_wait_rides_through_a_server_restart(
    server_process: Any, video_factory: Any, tmp_path: Path
) -> None:
    """kill -9 mid-task: the wait sees refused connections, retries, and ends ``ready``
    once the restarted server has run the task again."""
    srv = server_process(
        tmp_path / "restart-data",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.3"},
    )
    seen: list[str] = []
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:
        task = await client.embed.v2.tasks.create(
            VideoInput(
                MediaSource.file(video_factory(duration=12.0, seed=47)),
                segmentation=Fixed(2),
                embedding_option=["visual"],
            )
        )
        started = asyncio.Event()

        def note(status: Any) -> None:
            seen.append(status.status.value)
            started.set()

        waiting = asyncio.create_task(task.wait(sleep_interval=0.2, timeout=180, callback=note))
        await asyncio.wait_for(started.wait(), 60)
        assert seen[0] == "processing"
        await asyncio.to_thread(srv.kill)
        await asyncio.sleep(1.0)  # polls meet a refused connection meanwhile
        await asyncio.to_thread(srv.start)
        final = await asyncio.wait_for(waiting, 180)
    assert final.status.value == "ready" and seen[-1] == "ready"
    assert final.matrix(option="visual", scope="clip").shape == (6, 512)


async def test_watch_many_shares_one_poller(
    client: AsyncClient, live_server: Any, video_factory: Any
) -> None:
    video = video_factory(duration=5.0, seed=48)
    handles = [
        await client.embed.v2.tasks.create(
            VideoInput(
                MediaSource.file(video),
                segmentation=Fixed(5),
                embedding_option=["visual"],
                embedding_scope=["clip"],
            )
        )
        for _ in range(6)
    ]
    finals: dict[str, Any] = {}
    async with client.embed.v2.tasks.watch_many(
        [h.id for h in handles], sleep_interval=0.2, max_interval=0.5, timeout=180
    ) as updates:
        async for update in updates:
            if update.final:
                finals[update.task_id] = update
    assert set(finals) == {h.id for h in handles}
    for update in finals.values():
        assert update.error is None and update.task.status.value == "ready"
        assert update.task.matrix(option="visual").shape == (1, 512)
    # Retrieved once each, when done; the rest were shared list polls.
    assert live_server.counts("/v1.3/embed-v2/tasks/{task_id}", "GET") == len(handles)


async def test_image_and_audio_tasks(client: AsyncClient, video_factory: Any) -> None:
    image = await client.embed.v2.tasks.create(
        ImageInput(MediaSource.file(video_factory.image(seed=49))),
        model_name="marengo3.5",
        embedding_dimension=64,
    )
    done = await image.wait(sleep_interval=0.1, timeout=120)
    assert done.metadata is not None and done.metadata.input_type == "image"
    assert done.data is not None and len(done.data) == 1
    item = done.data[0]
    assert (item.embedding_option, item.embedding_scope, item.start_sec) == (
        "visual",
        "asset",
        None,
    )
    assert item.array().shape == (64,)
    audio = await client.embed.v2.tasks.create(
        AudioInput(
            MediaSource.file(video_factory.audio(duration=9, seed=50)), segmentation=Fixed(3)
        ),
    )
    result = await audio.wait(sleep_interval=0.1, timeout=120)
    assert result.metadata is not None and result.metadata.input_type == "audio"
    assert result.matrix(option="audio", scope="clip").shape == (3, 512)
