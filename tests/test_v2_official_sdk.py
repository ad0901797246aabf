"""The official ``twelvelabs`` SDK (1.3.6), sync and async clients, driving our v2 server.

``embed.v_2.tasks.create/retrieve/list`` and ``embed.v_2.create`` must parse every
answer (the SDK raises pydantic errors on a missing required field) and map every
error status to its typed exception. The sync client blocks, so it runs in a thread
while the in-process server serves.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from twelvelabs import AsyncTwelveLabs, TwelveLabs
from twelvelabs.errors import (
    BadRequestError,
    ContentTooLargeError,
    InternalServerError,
    NotFoundError,
    TooManyRequestsError,
)
from twelvelabs.types import (
    AsyncVideoInputRequest,
    AudioInputRequest,
    ImageInputRequest,
    MediaSource,
    TextInputRequest,
    VideoInputRequest,
)

from aioembed.server import RateLimit
from aioembed.server.testing import BROKEN_BACKEND, WORKER_INIT

NO_RETRY: Any = {"max_retries": 0}


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture
async def sdk(live_server: Any) -> AsyncIterator[AsyncTwelveLabs]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield AsyncTwelveLabs(
            api_key=live_server.api_key, base_url=live_server.base_url, httpx_client=http
        )


@pytest.fixture
def sync_sdk(live_server: Any) -> Iterator[TwelveLabs]:
    with httpx.Client(timeout=60) as http:
        yield TwelveLabs(
            api_key=live_server.api_key, base_url=live_server.base_url, httpx_client=http
        )


async def _ready(sdk: AsyncTwelveLabs, task_id: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        task = await sdk.embed.v_2.tasks.retrieve(task_id)
        if task.status != "processing":
            return task
        await asyncio.sleep(0.2)
    raise AssertionError("still processing")


async def test_async_tasks_from_url_and_base64_and_the_pager(
    sdk: AsyncTwelveLabs, static_server: Any, video_factory: Any
) -> None:
    video = video_factory(duration=6.0, seed=51)
    url = static_server.add(video, "sdk.mp4")
    from_url = await sdk.embed.v_2.tasks.create(
        input_type="video",
        model_name="marengo3.0",
        video=AsyncVideoInputRequest(
            media_source=MediaSource(url=url),
            segmentation={"strategy": "fixed", "fixed": {"duration_sec": 3}},
            embedding_option=["visual", "audio"],
        ),
    )
    from_b64 = await sdk.embed.v_2.tasks.create(
        input_type="video",
        model_name="marengo3.5",
        embedding_dimension=128,
        video=AsyncVideoInputRequest(
            media_source=MediaSource(base_64_string=b64(video)),
            embedding_option=["visual"],
        ),
    )
    assert from_url.status == "processing" and len(from_url.id) == 24
    assert from_b64.metadata is not None and from_b64.metadata.embedding_dimension == 128
    done = await _ready(sdk, from_url.id)
    assert done.status == "ready" and done.metadata.input_type == "video"
    assert done.metadata.clip_length == 3 and done.metadata.input_url == url
    assert {(d.embedding_option, d.embedding_scope) for d in done.data} == {
        ("visual", "clip"),
        ("audio", "clip"),
        ("visual", "asset"),
        ("audio", "asset"),
    }
    assert all(len(d.embedding) == 512 for d in done.data)
    short = await _ready(sdk, from_b64.id)
    assert short.status == "ready" and all(len(d.embedding) == 128 for d in short.data)
    assert short.usage is not None and short.usage.truncated is False

    pager = await sdk.embed.v_2.tasks.list(page_limit=1)
    ids = [t.id async for t in pager]  # the pager stops only on an empty page
    assert ids == [from_b64.id, from_url.id]
    with pytest.raises(NotFoundError):
        await sdk.embed.v_2.tasks.retrieve("0" * 24)


async def test_sync_client_tasks_and_sync_embeds(sync_sdk: TwelveLabs, video_factory: Any) -> None:
    video, image = video_factory(duration=5.0, seed=52), video_factory.image(seed=53)
    audio = video_factory.audio(duration=6.0, seed=54)

    def run() -> dict[str, Any]:
        v2 = sync_sdk.embed.v_2
        out: dict[str, Any] = {}
        created = v2.tasks.create(
            input_type="audio",
            model_name="marengo3.0",
            audio={"media_source": {"base64_string": b64(audio)}, "embedding_option": ["audio"]},
        )
        deadline = time.monotonic() + 120
        while (task := v2.tasks.retrieve(created.id)).status == "processing":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        out["task"] = task
        out["listed"] = [t.id for t in v2.tasks.list(page_limit=10)]
        out["text"] = v2.create(
            input_type="text", model_name="marengo3.0", text=TextInputRequest(input_text="a goal")
        )
        out["image"] = v2.create(
            input_type="image",
            model_name="marengo3.0",
            image=ImageInputRequest(media_source=MediaSource(base_64_string=b64(image))),
        )
        out["audio"] = v2.create(
            input_type="audio",
            model_name="marengo3.0",
            audio=AudioInputRequest(media_source=MediaSource(base_64_string=b64(audio))),
        )
        out["video"] = v2.create(
            input_type="video",
            model_name="marengo3.0",
            video=VideoInputRequest(
                media_source=MediaSource(base_64_string=b64(video)), embedding_option=["visual"]
            ),
        )
        return out

    out = await asyncio.to_thread(run)
    task = out["task"]
    assert task.status == "ready" and task.metadata.input_type == "audio"
    assert task.metadata.duration == pytest.approx(6.0, abs=0.1)
    assert out["listed"] == [task.id]
    text = out["text"]
    assert text.metadata is None and len(text.data[0].embedding) == 512
    assert out["image"].metadata.input_type == "image"
    assert out["audio"].metadata.input_type == "audio" and out["audio"].data
    assert out["video"].metadata.input_type == "video"
    assert {d.embedding_scope for d in out["video"].data} == {"clip", "asset"}


async def test_error_classes(
    sdk: AsyncTwelveLabs, live_server_factory: Any, video_factory: Any
) -> None:
    with pytest.raises(BadRequestError) as bad:
        await sdk.embed.v_2.tasks.create(
            input_type="video",
            model_name="marengo3.0",
            video={
                "media_source": {"url": "https://example.com/a.mp4"},
                "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 11}},
            },
        )
    assert bad.value.body["error"]["details"] == {
        "parameter": "video.segmentation.fixed.duration_sec"
    }
    with pytest.raises(BadRequestError):
        await sdk.embed.v_2.create(
            input_type="text", model_name="marengo3.5", text={"input_text": "x"}
        )

    from aioembed.contract.v2 import V2Limits

    small = await live_server_factory(
        v2_limits=V2Limits(base64_media_bytes=1024),
        rate_limit=RateLimit(2, 60),
        backend=BROKEN_BACKEND,
        worker_init=WORKER_INIT,
    )
    async with httpx.AsyncClient(timeout=60) as http:
        other = AsyncTwelveLabs(api_key=small.api_key, base_url=small.base_url, httpx_client=http)
        with pytest.raises(ContentTooLargeError) as big:
            await other.embed.v_2.create(
                input_type="video",
                model_name="marengo3.0",
                video={"media_source": {"base64_string": base64.b64encode(b"x" * 1100).decode()}},
                request_options=NO_RETRY,
            )
        assert big.value.body.error.code == "content_too_large"
        with pytest.raises(InternalServerError) as boom:
            await other.embed.v_2.create(
                input_type="text",
                model_name="marengo3.0",
                text={"input_text": "x"},
                request_options=NO_RETRY,
            )
        assert boom.value.body["error"]["code"] == "internal_error"
        with pytest.raises(TooManyRequestsError) as limited:
            await other.embed.v_2.tasks.create(
                input_type="video",
                model_name="marengo3.0",
                video={"media_source": {"url": "https://example.com/a.mp4"}},
                request_options=NO_RETRY,
            )
        assert limited.value.body["error"]["code"] == "too_many_requests"
        assert limited.value.headers["retry-after"]
