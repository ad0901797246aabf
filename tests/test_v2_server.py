"""The server's Embed API v2 over real sockets: tasks end to end, the list, sync embeds,
v2 error bodies, and the validator agreeing with the server (same code, message, path).
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
import numpy as np
import pytest
from test_v2_contract import CASES, SYNC_CASES

from aioembed import APIStatusError
from aioembed.contract.v2 import check_embed_body, check_task_body, count_tokens

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
