"""The official ``twelvelabs`` SDK (1.3.x) driving our server unchanged.

Any place where the SDK and the server disagree (a request it sends that we
refuse, a response it cannot parse) is a server bug.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from twelvelabs import AsyncTwelveLabs
from twelvelabs.core.api_error import ApiError
from twelvelabs.errors import BadRequestError

MODEL = "Marengo-retrieval-2.7"
TASKS = "/v1.3/embed/tasks"


@pytest.fixture
async def sdk(live_server: Any) -> AsyncIterator[AsyncTwelveLabs]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield AsyncTwelveLabs(
            api_key=live_server.api_key, base_url=live_server.base_url, httpx_client=http
        )


def _unit(vector: list[float]) -> bool:
    return math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, abs_tol=1e-4)


async def test_video_task_with_a_file(
    sdk: AsyncTwelveLabs, live_server: Any, video_factory: Any
) -> None:
    video: Path = video_factory(duration=8.0, name="sdk.mp4")
    with video.open("rb") as f:
        created = await sdk.embed.tasks.create(
            model_name=MODEL,
            video_file=f,
            video_clip_length=4,
            video_embedding_scope=["clip", "video"],
        )
    assert created.id and len(created.id) == 24

    status = await sdk.embed.tasks.status(created.id)
    assert status.id == created.id
    assert status.model_name == MODEL
    assert status.status in ("processing", "ready")

    seen: list[str] = []

    async def callback(task: Any) -> None:
        seen.append(task.status)

    done = await sdk.embed.tasks.wait_for_done(created.id, sleep_interval=0.1, callback=callback)
    assert done.status == "ready", done
    assert seen[-1] == "ready"
    meta = done.video_embedding.metadata
    assert meta.input_filename == "sdk.mp4"
    assert meta.video_clip_length == 4
    assert meta.video_embedding_scope == ["clip", "video"]
    assert meta.duration == pytest.approx(8.0, abs=0.1)

    got = await sdk.embed.tasks.retrieve(created.id, embedding_option=["visual-text", "audio"])
    assert got.status == "ready" and got.model_name == MODEL
    assert got.created_at is not None and got.updated_at is not None
    segments = got.video_embedding.segments
    assert {(s.embedding_option, s.embedding_scope) for s in segments} == {
        ("visual-text", "clip"),
        ("visual-text", "video"),
        ("audio", "clip"),
        ("audio", "video"),
    }
    clips = [
        (s.start_offset_sec, s.end_offset_sec)
        for s in segments
        if s.embedding_option == "audio" and s.embedding_scope == "clip"
    ]
    assert clips == [(0, 4), (4, 8)]
    assert all(len(s.float_) == 1024 and _unit(s.float_) for s in segments)

    only_visual = await sdk.embed.tasks.retrieve(created.id, embedding_option="visual-text")
    assert {s.embedding_option for s in only_visual.video_embedding.segments} == {"visual-text"}
    # The SDK sent its requests as the server expects: none was refused.
    assert live_server.counts(status=400) == 0


async def test_video_task_with_a_url_and_list(
    sdk: AsyncTwelveLabs, live_server: Any, video_factory: Any, static_server: Any
) -> None:
    url = static_server.add(video_factory(duration=5.0, seed=3), "remote.mp4")
    ids = []
    for start in ("0", "0.5", "1"):
        created = await sdk.embed.tasks.create(
            model_name=MODEL, video_url=url, video_start_offset_sec=float(start)
        )
        ids.append(created.id)
    for task_id in ids:
        done = await sdk.embed.tasks.wait_for_done(task_id, sleep_interval=0.1)
        assert done.status == "ready"
        assert done.video_embedding.metadata.input_url == url

    pager = await sdk.embed.tasks.list(page_limit=2)
    listed = [task.id async for task in pager]
    assert listed == list(reversed(ids))  # newest first, across pages, stops on the empty page
    assert live_server.counts(TASKS, "GET", 200) == 3  # pages 1, 2 and the empty 3

    ready = await sdk.embed.tasks.list(status="ready", page_limit=50)
    assert len(ready.items or []) == 3
    assert ready.items is not None and ready.items[0].status == "ready"
    assert ready.items[0].created_at is not None
    started = await sdk.embed.tasks.list(started_at="2000-01-01T00:00:00Z", page=1)
    assert len(started.items or []) == 3


async def test_sync_embed_text(sdk: AsyncTwelveLabs) -> None:
    res = await sdk.embed.create(model_name=MODEL, text="a man walking a dog")
    assert res.model_name == MODEL
    vec = res.text_embedding.segments[0].float_
    assert len(vec) == 1024 and _unit(vec)
    assert res.image_embedding is None and res.audio_embedding is None


async def test_sync_embed_image_and_audio(sdk: AsyncTwelveLabs, video_factory: Any) -> None:
    with video_factory.image().open("rb") as f:
        res = await sdk.embed.create(model_name="marengo3.0", image_file=f)
    assert len(res.image_embedding.segments[0].float_) == 512
    with video_factory.audio(duration=12).open("rb") as f:
        res = await sdk.embed.create(
            model_name="marengo3.0", audio_file=f, audio_start_offset_sec=2
        )
    spans = [(s.start_offset_sec, s.end_offset_sec) for s in res.audio_embedding.segments]
    assert spans == [(2, 12)]


async def test_errors_reach_the_sdk_typed(
    sdk: AsyncTwelveLabs, live_server: Any, video_factory: Any
) -> None:
    with video_factory().open("rb") as f, pytest.raises(BadRequestError) as bad:
        await sdk.embed.tasks.create(model_name=MODEL, video_file=f, video_clip_length=12)
    assert bad.value.status_code == 400
    assert bad.value.body["code"] == "parameter_invalid"
    assert "video_clip_length" in bad.value.body["message"]

    with pytest.raises(ApiError) as missing:
        await sdk.embed.tasks.status("0" * 24)
    assert missing.value.status_code == 404
    assert missing.value.body["code"] == "resource_not_exist"

    async with httpx.AsyncClient() as http:
        wrong = AsyncTwelveLabs(api_key="wrong", base_url=live_server.base_url, httpx_client=http)
        with pytest.raises(ApiError) as unauthorized:
            await wrong.embed.tasks.status("0" * 24)
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.body["code"] == "api_key_invalid"
