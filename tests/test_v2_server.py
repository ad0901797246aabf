"""The server's Embed API v2 over real sockets: tasks end to end, the list, sync embeds,
v2 error bodies, the validator agreeing with the server (same code, message, path), and
assets as media sources (the official SDK and ours; 409 on delete while in use).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
from test_v2_contract import CASES, SYNC_CASES
from twelvelabs import AsyncTwelveLabs
from twelvelabs.errors import BadRequestError, ConflictError
from twelvelabs.types import AsyncVideoInputRequest, ImageInputRequest, MediaSource

from aioembed import APIStatusError, AsyncClient
from aioembed.contract.v2 import check_embed_body, check_task_body, count_tokens
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT
from aioembed.v2 import Fixed, ImageInput, VideoInput
from aioembed.v2 import MediaSource as Source

TASKS = "embed-v2/tasks"


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


async def post(http: aiohttp.ClientSession, srv: Any, path: str, body: Any) -> tuple[int, Any]:
    async with http.post(srv.url(path), json=body, headers=srv.headers) as r:
        return r.status, await r.json()


async def get(http: aiohttp.ClientSession, srv: Any, path: str, **params: Any) -> tuple[int, Any]:
    async with http.get(srv.url(path), params=params, headers=srv.headers) as r:
        return r.status, await r.json()


async def wait_ready(http: aiohttp.ClientSession, srv: Any, task_id: str) -> Any:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, body = await get(http, srv, f"{TASKS}/{task_id}")
        assert status == 200, body
        if body["status"] != "processing":
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"task {task_id} still processing")


async def test_video_task_end_to_end(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    video = video_factory(duration=9.0, seed=31)
    body = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {
            "media_source": {"base64_string": b64(video), "url": None},
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 4}},
            "embedding_option": ["visual", "audio"],
            "embedding_type": ["separate_embedding", "fused_embedding"],
        },
    }
    status, created = await post(http, live_server, TASKS, body)
    assert status == 200, created
    assert created["status"] == "processing" and len(created["_id"]) == 24
    assert "metadata" not in created  # 3.0 has no embedding_dimension to report
    done = await wait_ready(http, live_server, created["_id"])
    assert done["status"] == "ready", done
    meta = done["metadata"]
    assert meta["input_type"] == "video" and meta["clip_length"] == 4
    assert meta["duration"] == pytest.approx(9.0, abs=0.1)
    assert meta["embedding_scopes"] == ["clip", "asset"]
    items = done["data"]
    clips = [d for d in items if d["embedding_scope"] == "clip"]
    assert [(d["start_sec"], d["embedding_option"]) for d in clips[:3]] == [
        (0.0, "visual"),
        (0.0, "audio"),
        (0.0, "fused"),
    ]
    assert items[-1]["embedding_scope"] == "asset" and items[-1]["embedding_option"] == "fused"
    for d in items:
        v = np.array(d["embedding"])
        assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    visual, audio, fused = (np.array(clips[i]["embedding"]) for i in range(3))
    expect = (visual + audio) / np.linalg.norm(visual + audio)
    assert np.allclose(fused, expect, atol=1e-5)

    status, page = await get(http, live_server, TASKS, page=1, page_limit=10)
    assert status == 200 and page["page_info"]["total_results"] == 1
    item = page["data"][0]
    assert item["_id"] == created["_id"] and "data" not in item
    assert item["video_embedding"]["metadata"]["video_clip_length"] == 4
    status, empty = await get(http, live_server, TASKS, page=2)
    assert status == 200 and empty["data"] == []
    # v1 and v2 tasks live apart: the v1 routes do not know this task.
    status, v1 = await get(http, live_server, f"embed/tasks/{created['_id']}/status")
    assert status == 404 and v1["code"] == "resource_not_exist"


async def test_marengo35_dimension_prefix_and_uncertainty(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    video = b64(video_factory(duration=6.0, seed=32))
    results = {}
    for dim in (128, 512):
        body = {
            "input_type": "video",
            "model_name": "marengo3.5",
            "embedding_dimension": dim,
            "embedding_uncertainty": True,
            "video": {
                "media_source": {"base64_string": video},
                "segmentation": {"temporal": {"strategy": "fixed", "fixed": {"duration_sec": 3}}},
                "embedding_option": ["visual"],
                "embedding_scope": ["clip"],
            },
        }
        status, created = await post(http, live_server, TASKS, body)
        assert status == 200 and created["metadata"] == {"embedding_dimension": dim}, created
        results[dim] = await wait_ready(http, live_server, created["_id"])
    short, full = results[128], results[512]
    assert short["metadata"]["embedding_dimension"] == 128
    assert short["usage"]["truncated"] is False and "video" in short["usage"]["input_tokens"]
    for a, b in zip(short["data"], full["data"], strict=True):
        assert len(a["embedding"]) == len(a["embedding_uncertainty"]) == 128
        assert np.allclose(a["embedding"], b["embedding"][:128])


async def test_errors_are_nested_and_documents_refused(
    live_server: Any, http: aiohttp.ClientSession
) -> None:
    status, body = await post(
        http,
        live_server,
        TASKS,
        {
            "input_type": "document",
            "model_name": "marengo3.5",
            "document": {"media_source": {"url": "http://127.0.0.1/a.pdf"}},
        },
    )
    assert status == 400
    assert body["error"]["message"] == "The local engine does not embed documents."
    assert body["error"]["details"] == {"parameter": "document"}
    async with http.post(live_server.url(TASKS), data=b"{nope", headers=live_server.headers) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "parameter_invalid"
    status, body = await get(http, live_server, f"{TASKS}/{'0' * 24}")
    assert status == 404 and body["error"]["code"] == "resource_not_exist"
    status, body = await get(http, live_server, TASKS, foo="1")
    assert status == 400 and body["error"]["code"] == "parameter_unknown"
    async with http.get(live_server.url(TASKS)) as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "api_key_invalid"
    big = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"base64_string": "A" * (50 * 1024 * 1024)}},
    }
    data = io.BytesIO(json.dumps(big).encode())
    async with http.post(live_server.url(TASKS), data=data, headers=live_server.headers) as r:
        assert r.status == 413 and (await r.json())["error"]["code"] == "content_too_large"


@pytest.mark.parametrize(("body", "code", "path"), CASES[:24] + CASES[-8:])
async def test_local_and_server_checks_agree_v2(
    live_server: Any, http: aiohttp.ClientSession, body: dict[str, Any], code: str, path: str
) -> None:
    """The validator the SDK runs and the server answer with the same code, message, path."""
    with pytest.raises(APIStatusError) as local:
        check_task_body(copy.deepcopy(body))
    status, answer = await post(http, live_server, TASKS, body)
    err = answer["error"]
    assert (status, err["code"], err["message"], err.get("details", {}).get("parameter")) == (
        local.value.status,
        local.value.code,
        local.value.message,
        local.value.parameter,
    )


@pytest.mark.parametrize(("body", "code", "path"), SYNC_CASES)
async def test_local_and_server_sync_checks_agree(
    live_server: Any, http: aiohttp.ClientSession, body: dict[str, Any], code: str, path: str
) -> None:
    with pytest.raises(APIStatusError) as local:
        check_embed_body(copy.deepcopy(body))
    status, answer = await post(http, live_server, "embed-v2", body)
    err = answer["error"]
    assert (status, err["code"], err["message"], err["details"]["parameter"]) == (
        400,
        local.value.code,
        local.value.message,
        path,
    )


async def test_sync_embeds(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any, static_server: Any
) -> None:
    status, text = await post(
        http,
        live_server,
        "embed-v2",
        {"input_type": "text", "model_name": "marengo3.0", "text": {"input_text": "a goal"}},
    )
    assert status == 200, text
    assert "metadata" not in text and len(text["data"][0]["embedding"]) == 512
    assert text["data"][0]["embedding_option"] is None
    image = video_factory.image(seed=33)
    status, img = await post(
        http,
        live_server,
        "embed-v2",
        {
            "input_type": "image",
            "model_name": "marengo3.0",
            "image": {"media_source": {"base64_string": b64(image)}},
        },
    )
    assert status == 200, img
    assert img["metadata"]["input_type"] == "image"
    audio = video_factory.audio(duration=8, seed=34)
    status, aud = await post(
        http,
        live_server,
        "embed-v2",
        {
            "input_type": "audio",
            "model_name": "marengo3.0",
            "audio": {"media_source": {"base64_string": b64(audio)}, "embedding_option": ["audio"]},
        },
    )
    assert status == 200, aud
    assert aud["metadata"]["input_type"] == "audio"
    assert {d["embedding_scope"] for d in aud["data"]} == {"clip", "asset"}
    status, multi = await post(
        http,
        live_server,
        "embed-v2",
        {
            "input_type": "multi_input",
            "model_name": "marengo3.5",
            "embedding_dimension": 64,
            "multi_input": {
                "input_text": "a kit <@kit>",
                "media_sources": [
                    {"name": "kit", "media_type": "image", "base64_string": b64(image)}
                ],
            },
        },
    )
    assert status == 200, multi
    assert len(multi["data"][0]["embedding"]) == 64
    assert multi["metadata"] == {"input_type": "multi_input", "embedding_dimension": 64}
    assert multi["usage"]["input_tokens"] == {"text": count_tokens("a kit <@kit>"), "image": 256}


async def test_idempotency_and_tenancy(
    live_server_factory: Any, http: aiohttp.ClientSession, static_server: Any, video_factory: Any
) -> None:
    srv = await live_server_factory(api_keys=("key-a", "key-b"))
    url = static_server.add(video_factory(duration=5.0, seed=35), "idem.mp4")
    body = {
        "input_type": "video",
        "model_name": "marengo3.5",
        "video": {"media_source": {"url": url}},
    }
    headers = {"x-api-key": "key-a", "Idempotency-Key": "one"}
    ids = []
    for _ in range(2):
        async with http.post(srv.url(TASKS), json=body, headers=headers) as r:
            assert r.status == 200
            ids.append(((await r.json())["_id"], r.headers.get("Idempotent-Replayed")))
    assert ids[0][0] == ids[1][0] and ids == [(ids[0][0], None), (ids[0][0], "true")]
    async with http.get(srv.url(f"{TASKS}/{ids[0][0]}"), headers={"x-api-key": "key-b"}) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "resource_not_exist"
    async with http.get(srv.url(TASKS), headers={"x-api-key": "key-b"}) as r:
        assert (await r.json())["page_info"]["total_results"] == 0


async def test_results_expire_after_the_retention(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    srv = await live_server_factory(v2_result_retention=1.0)
    body = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {
            "media_source": {"base64_string": b64(video_factory(duration=5.0, seed=36))},
            "embedding_option": ["visual"],
        },
    }
    status, created = await post(http, srv, TASKS, body)
    assert status == 200
    done = await wait_ready(http, srv, created["_id"])
    assert done["status"] == "ready"
    await asyncio.sleep(1.2)
    status, gone = await get(http, srv, f"{TASKS}/{created['_id']}")
    assert (status, gone["status"], gone["data"]) == (200, "failed", None)
    assert gone["error"] == {
        "message": "The embedding result is no longer available and cannot be retrieved."
    }


# -- assets as media sources ------------------------------------------------------------


def _official(srv: Any, http: httpx.AsyncClient, key: str | None = None) -> AsyncTwelveLabs:
    return AsyncTwelveLabs(api_key=key or srv.api_key, base_url=srv.base_url, httpx_client=http)


async def _asset(sdk: AsyncTwelveLabs, path: Path, wait_until: Any, status: str = "ready") -> str:
    with path.open("rb") as f:
        created = await sdk.assets.create(method="direct", file=f)

    async def done() -> Any:
        detail = await sdk.assets.retrieve(created.id)
        return detail if detail.status != "processing" else None

    detail = await wait_until(done, timeout=60)
    assert detail.status == status, detail
    return str(created.id)


def _vectors(task: Any) -> list[bytes]:
    return [np.asarray(d.embedding, "<f4").tobytes() for d in task.data]


async def test_asset_sources_with_the_official_sdk_and_ours(
    live_server: Any, video_factory: Any, wait_until: Any
) -> None:
    video = video_factory(duration=6.0, seed=37, name="match.mp4")
    image = video_factory.image(seed=38)
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = _official(live_server, http)
        video_id = await _asset(sdk, video, wait_until)
        image_id = await _asset(sdk, image, wait_until)
        request = {"segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 3}}}
        created = await sdk.embed.v_2.tasks.create(
            input_type="video",
            model_name="marengo3.0",
            video=AsyncVideoInputRequest(
                media_source=MediaSource(asset_id=video_id),
                embedding_option=["visual"],
                **request,
            ),
        )

        async def ready() -> Any:
            task = await sdk.embed.v_2.tasks.retrieve(created.id)
            return task if task.status != "processing" else None

        official = await wait_until(ready, timeout=120)
        assert official.status == "ready", official
        assert official.metadata.input_filename == "match.mp4"
        assert official.metadata.duration == pytest.approx(6.0, abs=0.1)
        sync = await sdk.embed.v_2.create(
            input_type="image",
            model_name="marengo3.0",
            image=ImageInputRequest(media_source=MediaSource(asset_id=image_id)),
        )
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as client:
        ours = await (
            await client.embed.v2.tasks.create(
                VideoInput(
                    Source.asset(video_id), segmentation=Fixed(3), embedding_option=["visual"]
                )
            )
        ).wait(sleep_interval=0.2, timeout=120)
        inline = await (
            await client.embed.v2.tasks.create(
                VideoInput(Source.file(video), segmentation=Fixed(3), embedding_option=["visual"])
            )
        ).wait(sleep_interval=0.2, timeout=120)
        image_inline = await client.embed.v2.create(ImageInput(Source.file(image)))
        image_asset = await client.embed.v2.create(ImageInput(Source.asset(image_id)))
    # The asset's bytes are the file's: the same vectors whichever way they came.
    assert _vectors(official) == _vectors(ours) == _vectors(inline) and len(ours.data or []) == 3
    assert _vectors(sync) == _vectors(image_asset) == _vectors(image_inline)


async def test_unusable_assets_are_refused_clearly(
    live_server_factory: Any, video_factory: Any, wait_until: Any, tmp_path: Path
) -> None:
    srv = await live_server_factory(api_keys=("key-a", "key-b"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    async with httpx.AsyncClient(timeout=60) as http:
        sdk, other = _official(srv, http, "key-a"), _official(srv, http, "key-b")
        mine = await _asset(sdk, video_factory(duration=5.0, seed=39), wait_until)
        image = await _asset(sdk, video_factory.image(seed=40), wait_until)
        broken = await _asset(sdk, junk, wait_until, status="failed")
        upload = await http.post(
            f"{srv.base_url}/assets/multipart-uploads",
            json={"filename": "later.mp4", "type": "video", "total_size": 10},
            headers={"x-api-key": "key-a"},
        )
        pending = upload.json()["asset_id"]
        cases = [
            (other, mine, "does not exist"),  # another key's asset is no asset at all
            (sdk, "0" * 24, "does not exist"),
            (sdk, pending, "is not ready yet; wait until it is ready (status: processing)"),
            (sdk, broken, "is not ready (status: failed)"),
            (sdk, image, "is of type image; this input takes video"),
        ]
        for client, asset_id, says in cases:
            with pytest.raises(BadRequestError) as info:
                await client.embed.v_2.tasks.create(
                    input_type="video",
                    model_name="marengo3.0",
                    video=AsyncVideoInputRequest(media_source=MediaSource(asset_id=asset_id)),
                )
            err = info.value.body["error"]
            assert err["code"] == "parameter_invalid" and says in err["message"], err
            assert err["details"] == {"parameter": "video.media_source.asset_id"}
        with pytest.raises(BadRequestError) as info:
            await other.embed.v_2.create(
                input_type="image",
                model_name="marengo3.0",
                image=ImageInputRequest(media_source=MediaSource(asset_id=image)),
            )
        assert info.value.body["error"]["details"] == {"parameter": "image.media_source.asset_id"}
        listed = await http.get(f"{srv.base_url}/embed-v2/tasks", headers={"x-api-key": "key-a"})
        assert listed.json()["page_info"]["total_results"] == 0  # no task was made


async def test_an_asset_in_use_by_a_task_cannot_be_deleted(
    live_server_factory: Any,
    video_factory: Any,
    wait_until: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """409 while a task embedding it is processing, after a restart too (the task store
    is the truth, scanned in pages: newer tasks push it to the second); deletable once
    the task is done, whose results stay."""
    monkeypatch.setattr("aioembed.server._assets._SCAN", 2)
    data_dir = tmp_path / "held"
    slow = {"data_dir": data_dir, "backend": SLOW_BACKEND, "worker_init": WORKER_INIT}
    srv = await live_server_factory(**slow)
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = _official(srv, http)
        asset_id = await _asset(sdk, video_factory(duration=20.0, seed=41), wait_until)
        created = await sdk.embed.v_2.tasks.create(
            input_type="video",
            model_name="marengo3.0",
            video=AsyncVideoInputRequest(
                media_source=MediaSource(asset_id=asset_id),
                segmentation={"strategy": "fixed", "fixed": {"duration_sec": 2}},
                embedding_option=["visual"],
            ),
        )
        newer = b64(video_factory(duration=4.0, seed=42))
        for _ in range(3):
            await sdk.embed.v_2.tasks.create(
                input_type="video",
                model_name="marengo3.0",
                video=AsyncVideoInputRequest(media_source=MediaSource(base_64_string=newer)),
            )
        for force in (False, True):
            with pytest.raises(ConflictError) as info:
                await sdk.assets.delete(asset_id, force=force)
            assert info.value.body["error"]["code"] == "asset_in_use"
        assert (await sdk.embed.v_2.tasks.retrieve(created.id)).status == "processing"
    await srv.runner.cleanup()  # a graceful stop mid-task; the task resumes after
    srv = await live_server_factory(**slow)
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = _official(srv, http)
        with pytest.raises(ConflictError):
            await sdk.assets.delete(asset_id)

        async def ready() -> Any:
            task = await sdk.embed.v_2.tasks.retrieve(created.id)
            return task if task.status != "processing" else None

        done = await wait_until(ready, timeout=120)
        assert done.status == "ready" and len(done.data) == 10 + 1, done  # clips, asset
        await sdk.assets.delete(asset_id)
        assert not (data_dir / "assets" / asset_id).exists()
        again = await sdk.embed.v_2.tasks.retrieve(created.id)
        assert _vectors(again) == _vectors(done)


async def test_duration_limits_at_create_and_for_sync_media(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    short = b64(video_factory(duration=3.0, seed=43))
    status, body = await post(
        http,
        live_server,
        TASKS,
        {
            "input_type": "video",
            "model_name": "marengo3.0",
            "video": {"media_source": {"base64_string": short}},
        },
    )
    assert status == 400, body
    assert body["error"]["details"] == {"parameter": "video.media_source.base64_string"}
    assert "outside the limits of 4 to 14400 seconds" in body["error"]["message"]
    # POST /embed-v2 has no minimum: a 2 s clip is one segment.
    clip = b64(video_factory.audio(duration=2, seed=44))
    status, body = await post(
        http,
        live_server,
        "embed-v2",
        {
            "input_type": "audio",
            "model_name": "marengo3.0",
            "audio": {"media_source": {"base64_string": clip}},
        },
    )
    assert status == 200, body
    assert [(d["start_sec"], d["embedding_scope"]) for d in body["data"]] == [
        (0.0, "clip"),
        (0.0, "asset"),
    ]


async def test_operator_mode_tasks_and_sync_embeds_take_assets(
    live_server_factory: Any,
    postgres_dsn: str,
    s3_endpoint: str,
    s3_env: dict[str, str],
    video_factory: Any,
    wait_until: Any,
) -> None:
    """Assets live in PostgreSQL and the bucket in operator mode, so any worker host can
    read them: a task with an ``asset_id`` source runs; a sync embed reads one too."""
    import asyncpg
    from aiobotocore.session import get_session

    from aioembed.server._store import new_task_id

    name = f"d_{new_task_id()}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    prefix, _, query = postgres_dsn.partition("?")
    dsn = f"{prefix.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    bucket = f"b-{new_task_id()}"
    async with get_session().create_client("s3", endpoint_url=s3_endpoint) as s3:
        await s3.create_bucket(Bucket=bucket)
    srv = await live_server_factory(
        database=dsn, media=f"s3://{bucket}/v2", s3_endpoint=s3_endpoint
    )
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = _official(srv, http)
        image = await _asset(sdk, video_factory.image(seed=45), wait_until)
        video = await _asset(sdk, video_factory(duration=5.0, seed=46), wait_until)
        created = await sdk.embed.v_2.tasks.create(
            input_type="video",
            model_name="marengo3.0",
            video=AsyncVideoInputRequest(media_source=MediaSource(asset_id=video)),
        )

        async def ready() -> Any:
            task = await sdk.embed.v_2.tasks.retrieve(created.id)
            return task if task.status != "processing" else None

        done = await wait_until(ready, timeout=120)
        assert done.status == "ready", done
        answer = await sdk.embed.v_2.create(
            input_type="image",
            model_name="marengo3.0",
            image=ImageInputRequest(media_source=MediaSource(asset_id=image)),
        )
        assert answer.data and len(answer.data[0].embedding) == 512
