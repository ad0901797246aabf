"""The local server over real HTTP: every endpoint and every contract error code.

Servers run in-process (``live_server``) or as subprocesses (``server_process``)
with the real engine on tiny generated videos. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from aioembed.server import RateLimit
from aioembed.server import MediaLimits, parse_rate_limit
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT

MODEL = "Marengo-retrieval-2.7"
MODEL3 = "marengo3.0"
TASKS = "/v1.3/embed/tasks"
Wait = Callable[..., Awaitable[Any]]


# -- helpers ----------------------------------------------------------------------------


def form(
    fields: dict[str, Any] | list[tuple[str, Any]], files: dict[str, Path] | None = None
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    items = fields.items() if isinstance(fields, dict) else fields
    for name, value in items:
        if isinstance(value, (list, tuple)):
            for v in value:
                data.add_field(name, str(v))
        else:
            data.add_field(name, str(value))
    for name, path in (files or {}).items():
        data.add_field(
            name, io.BytesIO(path.read_bytes()), filename=path.name, content_type="video/mp4"
        )
    return data


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> tuple[int, Any, Any]:
    async with http.request(method, url, headers=headers, **kw) as resp:
        body = await resp.read()
        assert resp.content_type == "application/json", body[:200]
        return resp.status, await resp.json(), resp.headers


async def create(
    http: aiohttp.ClientSession, server: Any, video: Path | None = None, **fields: Any
) -> tuple[int, Any]:
    fields.setdefault("model_name", MODEL)
    status, body, _ = await call(
        http,
        "POST",
        server.url("embed/tasks"),
        headers=server.headers,
        data=form(fields, {"video_file": video} if video else None),
    )
    return status, body


async def wait_done(
    http: aiohttp.ClientSession, server: Any, task_id: str, timeout: float = 60
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body, _ = await call(
            http, "GET", server.url(f"embed/tasks/{task_id}/status"), headers=server.headers
        )
        assert status == 200, body
        if body["status"] != "processing":
            return body
        assert asyncio.get_running_loop().time() < deadline, f"task {task_id} still processing"
        await asyncio.sleep(0.05)


def assert_error(
    status: int, body: Any, headers: Any, want_status: int, code: str, param: str | None = None
) -> None:
    assert status == want_status, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if param is not None:
        assert param in body["message"], body
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert headers["x-request-id"] == body["request_id"]


# -- service routes, auth, routing ----------------------------------------------------------


async def test_health_openapi_need_no_key(live_server: Any, http: aiohttp.ClientSession) -> None:
    for url in (live_server.root_url + "/health", live_server.url("health")):
        status, body, headers = await call(http, "GET", url)
        assert status == 200 and body["status"] == "ok"
        assert headers["x-request-id"]
    status, doc, _ = await call(http, "GET", live_server.url("openapi.json"))
    assert status == 200 and doc["openapi"].startswith("3.")
    assert {
        "/embed/tasks",
        "/embed/tasks/{task_id}/status",
        "/embed/tasks/{task_id}",
        "/embed",
    } <= set(doc["paths"])


async def test_auth_and_routing_errors(live_server: Any, http: aiohttp.ClientSession) -> None:
    s = live_server
    assert_error(*await call(http, "GET", s.url("embed/tasks")), 401, "api_key_invalid")
    assert_error(
        *await call(http, "GET", s.url("embed/tasks"), headers={"x-api-key": "nope"}),
        401,
        "api_key_invalid",
    )
    # 401 comes before an unknown route or method.
    assert_error(*await call(http, "GET", s.url("no/such/path")), 401, "api_key_invalid")
    assert_error(*await call(http, "DELETE", s.url("embed/tasks")), 401, "api_key_invalid")
    assert_error(
        *await call(http, "GET", s.url("no/such/path"), headers=s.headers),
        404,
        "resource_not_exist",
    )
    status, body, headers = await call(http, "DELETE", s.url("embed/tasks"), headers=s.headers)
    assert_error(status, body, headers, 405, "method_not_allowed")
    assert set(headers["Allow"].split(",")) >= {"GET", "POST"}
    # Unknown route before unknown parameters.
    assert_error(
        *await call(http, "GET", s.url("nope?bogus=1"), headers=s.headers),
        404,
        "resource_not_exist",
    )


async def test_metrics_count_requests(live_server: Any, http: aiohttp.ClientSession) -> None:
    s = live_server
    for _ in range(3):
        await call(http, "GET", s.url("embed/tasks"), headers=s.headers)
    await call(http, "GET", s.url("embed/tasks"))
    assert s.counts(TASKS, "GET", 200) == 3
    assert s.counts(TASKS, "GET", 401) == 1
    status, body, _ = await call(http, "GET", s.url("metrics"), headers=s.headers)
    assert status == 200
    rows = {(r["route"], r["method"], r["status"]): r["count"] for r in body["requests"]}
    assert rows[(TASKS, "GET", 200)] == 3
    assert body["tasks"] == {"processing": 0, "ready": 0, "failed": 0}
    assert s.counts("/v1.3/metrics") == 1


# -- create -> ready -> retrieve --------------------------------------------------------------


async def test_create_status_retrieve(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = live_server
    video = video_factory(duration=8.5, name="clip one.mp4")
    status, body = await create(
        http, s, video, video_embedding_scope=["clip", "video"], video_clip_length="3"
    )
    assert status == 200, body
    task_id = body["_id"]
    assert re.fullmatch(r"[0-9a-f]{24}", task_id)

    done = await wait_done(http, s, task_id)
    assert done["status"] == "ready", done
    meta = done["video_embedding"]["metadata"]
    assert meta["input_filename"] == "clip one.mp4"
    assert meta["video_clip_length"] == 3
    assert meta["video_embedding_scope"] == ["clip", "video"]
    assert meta["duration"] == pytest.approx(8.5, abs=0.1)
    assert "progress" not in done and "error" not in done

    status, full, _ = await call(http, "GET", s.url(f"embed/tasks/{task_id}"), headers=s.headers)
    assert status == 200
    assert full["model_name"] == MODEL and full["status"] == "ready"
    for key in ("created_at", "updated_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", full[key])
    segs = full["video_embedding"]["segments"]
    assert full["video_embedding"]["metadata"]["video_embedding_option"] == ["visual-text", "audio"]
    for option in ("visual-text", "audio"):
        clips = [
            (x["start_offset_sec"], x["end_offset_sec"])
            for x in segs
            if x["embedding_option"] == option and x["embedding_scope"] == "clip"
        ]
        # 8.5 s in 3 s clips: 0-3, 3-6, 6-8.5 (a 2.5 s remainder is kept).
        assert clips == [(0, 3), (3, 6), (6, pytest.approx(8.5, abs=0.1))]
        video_seg = [
            x for x in segs if x["embedding_option"] == option and x["embedding_scope"] == "video"
        ]
        assert len(video_seg) == 1 and video_seg[0]["start_offset_sec"] == 0
    for seg in segs:
        vec = np.asarray(seg["float"], dtype=np.float64)
        assert vec.shape == (1024,)
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)

    status, only_audio, _ = await call(
        http, "GET", s.url(f"embed/tasks/{task_id}?embedding_option=audio"), headers=s.headers
    )
    assert status == 200
    assert {x["embedding_option"] for x in only_audio["video_embedding"]["segments"]} == {"audio"}
    assert only_audio["video_embedding"]["metadata"]["video_embedding_option"] == ["audio"]
    assert s.data_dir.joinpath("media", task_id).exists() is False  # input removed once done


async def test_retrieve_option_rules(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = live_server
    _, body = await create(http, s, video_factory(), model_name=MODEL3)
    task_id = body["_id"]
    await wait_done(http, s, task_id)
    url = s.url(f"embed/tasks/{task_id}")
    # marengo3.0 has visual + audio; visual-text belongs to the other model; transcription to none.
    for option in ("visual-text", "transcription", "bogus"):
        assert_error(
            *await call(http, "GET", f"{url}?embedding_option={option}", headers=s.headers),
            400,
            "parameter_invalid",
            "embedding_option",
        )
    status, both, _ = await call(
        http, "GET", f"{url}?embedding_option=visual&embedding_option=audio", headers=s.headers
    )
    assert status == 200
    assert all(len(x["float"]) == 512 for x in both["video_embedding"]["segments"])
    assert_error(
        *await call(http, "GET", f"{url}?bogus=1", headers=s.headers),
        400,
        "parameter_unknown",
        "bogus",
    )
    # Precedence: parameter_invalid before resource_not_exist.
    assert_error(
        *await call(
            http,
            "GET",
            s.url(f"embed/tasks/{'0' * 24}?embedding_option=transcription"),
            headers=s.headers,
        ),
        400,
        "parameter_invalid",
    )


async def test_not_found_and_other_keys_tasks(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = await live_server_factory(api_keys=("key-a", "key-b"))
    _, body = await create(http, s, video_factory())
    task_id = body["_id"]
    other = {"x-api-key": "key-b"}
    for path in (f"embed/tasks/{task_id}", f"embed/tasks/{task_id}/status"):
        assert_error(
            *await call(http, "GET", s.url(path), headers=other), 404, "resource_not_exist"
        )
        assert (await call(http, "GET", s.url(path), headers=s.headers))[0] == 200
    for bad in ("0" * 24, "not-an-id", "../../etc/passwd", "F" * 24):
        assert_error(
            *await call(http, "GET", s.url(f"embed/tasks/{bad}/status"), headers=s.headers),
            404,
            "resource_not_exist",
        )
    status, listing, _ = await call(http, "GET", s.url("embed/tasks"), headers=other)
    assert status == 200 and listing["data"] == [] and listing["page_info"]["total_results"] == 0


# -- create validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"video_clip_length": "20"}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": "1.99"}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": "abc"}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": "nan"}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": "inf"}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": "1e308"}, "parameter_invalid", "video_clip_length"),
        ({"video_start_offset_sec": "-1"}, "parameter_invalid", "video_start_offset_sec"),
        (
            {"video_start_offset_sec": "5", "video_end_offset_sec": "5"},
            "parameter_invalid",
            "video_end_offset_sec",
        ),
        (
            {"video_start_offset_sec": "5", "video_end_offset_sec": "3"},
            "parameter_invalid",
            "video_end_offset_sec",
        ),
        (
            {"video_end_offset_sec": "4", "video_clip_length": "6"},
            "parameter_invalid",
            "video_end_offset_sec",
        ),
        ({"video_embedding_scope": "bogus"}, "parameter_invalid", "video_embedding_scope"),
        ({"model_name": "no-such-model"}, "parameter_invalid", "model_name"),
        ({"model_name": [MODEL, MODEL]}, "parameter_invalid", "model_name"),
        ({"bogus": "1"}, "parameter_unknown", "bogus"),
        ({"model_name": ""}, "parameter_not_provided", "model_name"),
        # Precedence: unknown > not provided > invalid.
        ({"model_name": "", "bogus": "1"}, "parameter_unknown", "bogus"),
        ({"model_name": "", "video_clip_length": "20"}, "parameter_not_provided", "model_name"),
    ],
)
async def test_create_form_rules(
    live_server: Any,
    http: aiohttp.ClientSession,
    video_factory: Any,
    fields: dict[str, Any],
    code: str,
    param: str,
) -> None:
    s = live_server
    fields = {"model_name": MODEL, **fields}
    status, body, headers = await call(
        http,
        "POST",
        s.url("embed/tasks"),
        headers=s.headers,
        data=form(fields, {"video_file": video_factory()}),
    )
    assert_error(status, body, headers, 400, code, param)
    assert list((s.data_dir / "uploads").iterdir()) == []
    assert list((s.data_dir / "media").iterdir()) == []


async def test_create_needs_a_video(live_server: Any, http: aiohttp.ClientSession) -> None:
    s = live_server
    assert_error(
        *await call(
            http, "POST", s.url("embed/tasks"), headers=s.headers, data=form({"model_name": MODEL})
        ),
        400,
        "parameter_not_provided",
        "video_file",
    )
    # No body at all: model_name is the first thing missing.
    assert_error(
        *await call(http, "POST", s.url("embed/tasks"), headers=s.headers),
        400,
        "parameter_not_provided",
        "model_name",
    )
    assert_error(
        *await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers=s.headers,
            data=form({"model_name": MODEL, "video_url": "ftp://example.invalid/a.mp4"}),
        ),
        400,
        "parameter_invalid",
        "video_url",
    )


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("short", "video_duration_too_short"),
        ("low", "video_resolution_too_low"),
        ("empty", "video_file_broken"),
        ("random", "video_file_broken"),
        ("text", "video_file_broken"),
        ("truncated", "video_file_broken"),
        ("audio-only", "video_file_broken"),
    ],
)
async def test_create_rejects_bad_videos(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any, kind: str, code: str
) -> None:
    s = live_server
    if kind == "short":
        video = video_factory(duration=3.0)
    elif kind == "low":
        video = video_factory(width=320, height=360)
    elif kind == "empty":
        video = video_factory.file("empty.mp4", b"")
    elif kind == "random":
        video = video_factory.file("random.mp4", np.random.default_rng(1).bytes(50_000))
    elif kind == "text":
        video = video_factory.file("notes.mp4", b"just some text\n" * 100)
    elif kind == "truncated":
        data = video_factory(duration=5).read_bytes()
        video = video_factory.file("truncated.mp4", data[: len(data) // 3])
    else:
        video = video_factory.audio(suffix=".m4a", duration=6)
    status, body, headers = await call(
        http,
        "POST",
        s.url("embed/tasks"),
        headers=s.headers,
        data=form({"model_name": MODEL}, {"video_file": video}),
    )
    assert_error(status, body, headers, 400, code)
    assert (await call(http, "GET", s.url("health")))[0] == 200


async def test_video_checks_can_happen_in_the_task(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = await live_server_factory(probe_on_create=False)
    cases = [
        (video_factory(duration=3.0), "video_duration_too_short"),
        (video_factory.file("junk.mp4", b"junk" * 1000), "video_file_broken"),
    ]
    for video, code in cases:
        status, body = await create(http, s, video)
        assert status == 200, body
        done = await wait_done(http, s, body["_id"])
        assert done["status"] == "failed" and done["error"]["code"] == code, done
    status, body = await create(http, s, video_factory(duration=5.0), video_start_offset_sec="4")
    done = await wait_done(http, s, body["_id"])
    assert done["error"]["code"] == "parameter_invalid", done
    assert "video_start_offset_sec" in done["error"]["message"]


async def test_limits_are_inclusive_and_configurable(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = await live_server_factory(
        media_limits=MediaLimits(max_duration=5.0, max_width=400, max_height=400)
    )
    # Exactly at the limits: accepted.
    status, body = await create(http, s, video_factory(duration=4.0, width=360, height=360))
    assert status == 200, body
    assert_error(
        *await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers=s.headers,
            data=form({"model_name": MODEL}, {"video_file": video_factory(duration=6.0)}),
        ),
        400,
        "video_duration_too_long",
    )
    assert_error(
        *await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers=s.headers,
            data=form(
                {"model_name": MODEL},
                {"video_file": video_factory(duration=4.0, width=480, height=360)},
            ),
        ),
        400,
        "video_resolution_too_high",
    )
    # Offsets past the probed duration.
    assert_error(
        *await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers=s.headers,
            data=form(
                {"model_name": MODEL, "video_start_offset_sec": "4.5"},
                {"video_file": video_factory(duration=4.0)},
            ),
        ),
        400,
        "parameter_invalid",
        "video_start_offset_sec",
    )
    assert (await wait_done(http, s, body["_id"]))["status"] == "ready"


async def test_offsets_select_the_range(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = live_server
    status, body = await create(
        http,
        s,
        video_factory(duration=12.0),
        video_start_offset_sec="2",
        video_end_offset_sec="10.5",
        video_clip_length="4",
    )
    assert status == 200, body
    await wait_done(http, s, body["_id"])
    _, full, _ = await call(
        http,
        "GET",
        s.url(f"embed/tasks/{body['_id']}?embedding_option=visual-text"),
        headers=s.headers,
    )
    spans = [
        (x["start_offset_sec"], x["end_offset_sec"]) for x in full["video_embedding"]["segments"]
    ]
    # 2-10.5 in 4 s clips: 2-6, 6-10, and the 0.5 s remainder is dropped.
    assert spans == [(2, 6), (6, 10)]


# -- uploads ---------------------------------------------------------------------------------


async def test_upload_over_cap_is_413_and_leaves_nothing(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = await live_server_factory(max_upload_bytes=20_000)
    video = video_factory(duration=6)
    assert video.stat().st_size > 20_000
    status, body, headers = await call(
        http,
        "POST",
        s.url("embed/tasks"),
        headers=s.headers,
        data=form({"model_name": MODEL}, {"video_file": video}),
    )
    assert_error(status, body, headers, 413, "video_filesize_too_large")
    assert list((s.data_dir / "uploads").iterdir()) == []
    assert list((s.data_dir / "media").iterdir()) == []
    _, listing, _ = await call(http, "GET", s.url("embed/tasks"), headers=s.headers)
    assert listing["data"] == []


def _multipart_head(boundary: str, fields: dict[str, str], file_name: str) -> bytes:
    out = b""
    for name, value in fields.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; filename="{file_name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    return out


async def _raw_request(
    server: Any, fields: dict[str, str], body_prefix: bytes, total_length: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    boundary = "xYzBoundary123"
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = _multipart_head(boundary, fields, "big.mp4")
    writer.write(
        (
            "POST /v1.3/embed/tasks HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"x-api-key: {server.api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + total_length}\r\n\r\n"
        ).encode()
        + head
        + body_prefix
    )
    await writer.drain()
    return reader, writer


async def test_aborted_upload_leaves_no_file_and_no_task(
    live_server: Any, http: aiohttp.ClientSession, wait_until: Wait
) -> None:
    s = live_server
    uploads = s.data_dir / "uploads"
    _, writer = await _raw_request(s, {"model_name": MODEL}, b"\0" * 3_000_000, 50_000_000)

    async def receiving() -> bool:
        return any(uploads.iterdir())

    await wait_until(receiving, timeout=10)  # the part file exists while receiving
    writer.close()  # the client goes away mid-upload
    await writer.wait_closed()

    async def cleaned() -> bool:
        return not any(uploads.iterdir())

    await wait_until(cleaned, timeout=10)
    assert list((s.data_dir / "media").iterdir()) == []
    _, listing, _ = await call(http, "GET", s.url("embed/tasks"), headers=s.headers)
    assert listing["data"] == []
    assert (await call(http, "GET", s.url("health")))[0] == 200


async def test_form_rules_refuse_before_the_file_is_stored(live_server: Any) -> None:
    """Fields come first (as the official SDK sends them): a bad field is answered
    while the client is still holding back almost all of a 50 MB file."""
    s = live_server
    reader, writer = await _raw_request(
        s, {"model_name": MODEL, "video_clip_length": "42"}, b"\0" * 100_000, 50_000_000
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 400"), head
        assert not any((s.data_dir / "uploads").iterdir())
    finally:
        writer.close()
        await writer.wait_closed()


async def _expect(server: Any, key: str, length: int) -> bytes:
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "POST /v1.3/embed/tasks HTTP/1.1\r\n"
                f"Host: {host}\r\nx-api-key: {key}\r\nExpect: 100-continue\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {length}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_expect_100_continue_refuses_before_the_body(live_server: Any) -> None:
    s = live_server
    assert (await _expect(s, s.api_key, 1000)).startswith(b"HTTP/1.1 100 Continue")
    assert (await _expect(s, "wrong", 1000)).startswith(b"HTTP/1.1 401")
    assert (await _expect(s, s.api_key, 3 * 1024**3)).startswith(b"HTTP/1.1 413")
    assert s.counts(TASKS, "POST", 401) == 1 and s.counts(TASKS, "POST", 413) == 1


async def test_path_traversal_filename_is_stored_safely(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = live_server
    data = aiohttp.FormData()
    data.add_field("model_name", MODEL)
    data.add_field(
        "video_file", io.BytesIO(video_factory().read_bytes()), filename="../../evil.mp4"
    )
    status, body, _ = await call(http, "POST", s.url("embed/tasks"), headers=s.headers, data=data)
    assert status == 200, body
    done = await wait_done(http, s, body["_id"])
    assert done["video_embedding"]["metadata"]["input_filename"] == "evil.mp4"
    assert not (s.data_dir.parent / "evil.mp4").exists()


def test_safe_filename() -> None:
    from aioembed.server._uploads import safe_filename

    assert safe_filename("../../x.mp4") == "x.mp4"
    assert safe_filename("..\\..\\win.mp4") == "win.mp4"
    assert safe_filename("a\x01b\x7f.mp4") == "ab.mp4"
    assert safe_filename("clip%20one.mp4") == "clip one.mp4"
    assert (
        safe_filename("..") is None and safe_filename("") is None and safe_filename("dir/") is None
    )
    assert len(safe_filename("n" * 1000) or "") == 255


async def test_malformed_bodies(live_server: Any, http: aiohttp.ClientSession) -> None:
    s = live_server
    url = s.url("embed/tasks")
    bad = b'--b\r\nContent-Disposition: form-data; name="model_name"\r\n\r\nx'  # never terminated
    assert_error(
        *await call(
            http,
            "POST",
            url,
            headers={**s.headers, "Content-Type": "multipart/form-data; boundary=b"},
            data=bad,
        ),
        400,
        "parameter_invalid",
    )
    assert_error(
        *await call(
            http,
            "POST",
            url,
            headers={**s.headers, "Content-Type": "multipart/form-data"},
            data=b"junk",
        ),
        400,
        "parameter_invalid",
    )
    assert_error(
        *await call(http, "POST", url, headers=s.headers, json={"model_name": MODEL}),
        400,
        "parameter_invalid",
        "Content-Type",
    )
    many = form([("video_embedding_scope", "clip")] * 101 + [("model_name", MODEL)])
    assert_error(
        *await call(http, "POST", url, headers=s.headers, data=many),
        400,
        "parameter_invalid",
        "at most 100 parts",
    )
    no_name = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n"
    assert_error(
        *await call(
            http,
            "POST",
            url,
            headers={**s.headers, "Content-Type": "multipart/form-data; boundary=b"},
            data=no_name,
        ),
        400,
        "parameter_invalid",
    )


async def test_oversized_headers_get_contract_json(live_server: Any) -> None:
    host, port = live_server.base_url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"GET /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20000}\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1].startswith(b"4"), head
    assert b"application/json" in head.lower()
    import json

    payload = json.loads(body)
    assert payload["code"] and payload["message"]


async def test_urlencoded_create_works(
    live_server: Any, http: aiohttp.ClientSession, static_server: Any, video_factory: Any
) -> None:
    s = live_server
    url = static_server.add(video_factory(), "v.mp4")
    status, body, _ = await call(
        http,
        "POST",
        s.url("embed/tasks"),
        headers=s.headers,
        data={"model_name": MODEL, "video_url": url},
    )
    assert status == 200, body
    assert (await wait_done(http, s, body["_id"]))["status"] == "ready"


# -- URL inputs --------------------------------------------------------------------------------


async def test_video_url_task(
    live_server: Any, http: aiohttp.ClientSession, static_server: Any, video_factory: Any
) -> None:
    s = live_server
    url = static_server.add(video_factory(duration=7), "remote.mp4")
    status, body = await create(http, s, video_url=url, video_embedding_scope="video")
    assert status == 200, body
    done = await wait_done(http, s, body["_id"])
    assert done["status"] == "ready", done
    assert done["video_embedding"]["metadata"]["input_url"] == url
    assert done["video_embedding"]["metadata"]["duration"] == pytest.approx(7, abs=0.1)
    # Both given: the URL wins, the file is not stored.
    status, body = await create(http, s, video_factory.file("junk.mp4", b"x" * 100), video_url=url)
    assert status == 200, body
    assert (await wait_done(http, s, body["_id"]))["status"] == "ready"


async def test_video_url_failures_end_failed(
    live_server: Any, http: aiohttp.ClientSession, static_server: Any, video_factory: Any
) -> None:
    s = live_server
    broken = static_server.add(video_factory.file("b.mp4", b"not a video" * 10))
    cases = {
        static_server.url("status/404"): "parameter_invalid",
        broken: "video_file_broken",
        static_server.url("redirect?to=/status/500"): "parameter_invalid",
    }
    for url, code in cases.items():
        status, body = await create(http, s, video_url=url)
        assert status == 200, body
        done = await wait_done(http, s, body["_id"])
        assert done["status"] == "failed"
        assert done["error"]["code"] == code, done
        assert done["error"]["message"]


async def test_url_size_cap_and_timeout(
    live_server_factory: Any, http: aiohttp.ClientSession, static_server: Any
) -> None:
    s = await live_server_factory(max_upload_bytes=1_000_000, url_fetch_timeout=1.0)
    _, body = await create(http, s, video_url=static_server.url("endless"))
    done = await wait_done(http, s, body["_id"])
    assert done["error"]["code"] == "video_filesize_too_large", done
    _, body = await create(http, s, video_url=static_server.url("stall"))
    done = await wait_done(http, s, body["_id"])
    assert done["error"]["code"] == "parameter_invalid" and "timed out" in done["error"]["message"]


async def test_private_urls_refused_without_allow_list(
    live_server_factory: Any, http: aiohttp.ClientSession, static_server: Any
) -> None:
    s = await live_server_factory(url_allow=())
    for url in (
        static_server.url("files/x.mp4"),
        "http://localhost:9/x.mp4",
        "http://[::1]:9/x.mp4",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/x.mp4",
        "http://192.168.0.1/x.mp4",
        "http://0.0.0.0/x.mp4",
        "http://[::ffff:127.0.0.1]/x.mp4",
    ):
        status, body, headers = await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers=s.headers,
            data=form({"model_name": MODEL, "video_url": url}),
        )
        assert_error(status, body, headers, 400, "parameter_invalid", "video_url")
    assert sum(static_server.hits.values()) == 0


async def test_redirect_to_a_refused_address_fails(
    live_server_factory: Any, http: aiohttp.ClientSession, static_server: Any
) -> None:
    s = await live_server_factory(url_allow=("127.0.0.1",))
    target = static_server.url("files/x.mp4").replace("127.0.0.1", "127.0.0.2")
    _, body = await create(http, s, video_url=static_server.url(f"redirect?to={target}"))
    done = await wait_done(http, s, body["_id"])
    assert done["status"] == "failed" and "private" in done["error"]["message"], done


# -- list -----------------------------------------------------------------------------------


async def test_list_paging_and_filters(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any, static_server: Any
) -> None:
    s = live_server
    ids = []
    for seed in range(3):
        _, body = await create(http, s, video_factory(seed=seed))
        ids.append(body["_id"])
    _, body = await create(http, s, video_url=static_server.url("status/404"))
    failed_id = body["_id"]
    for task_id in [*ids, failed_id]:
        await wait_done(http, s, task_id)
    newest_first = [failed_id, *reversed(ids)]

    async def page(query: str) -> Any:
        status, body, _ = await call(http, "GET", s.url(f"embed/tasks?{query}"), headers=s.headers)
        assert status == 200, body
        return body

    p1, p2, p3 = [await page(f"page={n}&page_limit=2") for n in (1, 2, 3)]
    assert [t["_id"] for t in p1["data"] + p2["data"]] == newest_first
    assert p1["page_info"] == {"limit_per_page": 2, "page": 1, "total_page": 2, "total_results": 4}
    assert p3["data"] == [] and p3["page_info"]["page"] == 3
    assert "segments" not in p1["data"][0]["video_embedding"]
    assert (await page(""))["page_info"]["limit_per_page"] == 10

    assert [t["_id"] for t in (await page("status=failed"))["data"]] == [failed_id]
    assert len((await page("status=ready"))["data"]) == 3
    assert len((await page("status=ready&status=failed"))["data"]) == 4
    assert len((await page("status=processing"))["data"]) == 0
    failed = (await page("status=failed"))["data"][0]
    assert failed["error"]["code"] == "parameter_invalid"

    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await page(f"started_at={future}"))["data"] == []
    assert len((await page(f"started_at={past}&ended_at={future}"))["data"]) == 4
    assert (await page(f"ended_at={past}"))["data"] == []

    for query, param in (
        ("page_limit=51", "page_limit"),
        ("page_limit=0", "page_limit"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("status=done", "status"),
        ("started_at=yesterday", "started_at"),
    ):
        assert_error(
            *await call(http, "GET", s.url(f"embed/tasks?{query}"), headers=s.headers),
            400,
            "parameter_invalid",
            param,
        )
    assert_error(
        *await call(http, "GET", s.url("embed/tasks?sort=asc"), headers=s.headers),
        400,
        "parameter_unknown",
        "sort",
    )


# -- POST /embed -------------------------------------------------------------------------------


async def test_sync_embed_text_image_audio(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any, static_server: Any
) -> None:
    s = live_server
    url = s.url("embed")

    status, body, _ = await call(
        http, "POST", url, headers=s.headers, data=form({"model_name": MODEL, "text": "a red car"})
    )
    assert status == 200, body
    assert set(body) == {"model_name", "text_embedding"} and body["model_name"] == MODEL
    vec = np.asarray(body["text_embedding"]["segments"][0]["float"])
    assert vec.shape == (1024,) and np.linalg.norm(vec) == pytest.approx(1, abs=1e-4)

    status, body, _ = await call(
        http, "POST", url, headers=s.headers, data=form({"model_name": MODEL3, "text": "a red car"})
    )
    assert len(body["text_embedding"]["segments"][0]["float"]) == 512

    image = video_factory.image()
    data = aiohttp.FormData()
    data.add_field("model_name", MODEL3)
    data.add_field(
        "image_file", io.BytesIO(image.read_bytes()), filename="pic.png", content_type="image/png"
    )
    status, body, _ = await call(http, "POST", url, headers=s.headers, data=data)
    assert status == 200, body
    assert body["image_embedding"]["metadata"]["input_filename"] == "pic.png"
    assert len(body["image_embedding"]["segments"][0]["float"]) == 512
    status, via_url, _ = await call(
        http,
        "POST",
        url,
        headers=s.headers,
        data=form({"model_name": MODEL3, "image_url": static_server.add(image)}),
    )
    assert status == 200, via_url
    assert via_url["image_embedding"]["segments"] == body["image_embedding"]["segments"]

    audio = video_factory.audio(duration=12)
    data = aiohttp.FormData()
    data.add_field("model_name", MODEL)
    data.add_field("audio_start_offset_sec", "1")
    data.add_field(
        "audio_file", io.BytesIO(audio.read_bytes()), filename="a.wav", content_type="audio/wav"
    )
    status, body, _ = await call(http, "POST", url, headers=s.headers, data=data)
    assert status == 200, body
    spans = [
        (x["start_offset_sec"], x["end_offset_sec"]) for x in body["audio_embedding"]["segments"]
    ]
    assert spans[0] == (1, 11)
    assert list((s.data_dir / "uploads").iterdir()) == []


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model_name": MODEL}, "parameter_not_provided", "text"),
        ({"text": "hi"}, "parameter_not_provided", "model_name"),
        ({"model_name": "nope", "text": "hi"}, "parameter_invalid", "model_name"),
        ({"model_name": MODEL, "text": "  "}, "parameter_invalid", "text"),
        (
            {"model_name": MODEL, "text": "hi", "image_url": "http://127.0.0.1:9/x.png"},
            "parameter_invalid",
            "image_url",
        ),
        (
            {"model_name": MODEL, "text": "hi", "audio_start_offset_sec": "1"},
            "parameter_invalid",
            "audio_start_offset_sec",
        ),
        ({"model_name": MODEL, "text": "hi", "video_url": "x"}, "parameter_unknown", "video_url"),
        (
            {"model_name": MODEL, "image_url": "file:///etc/passwd"},
            "parameter_invalid",
            "image_url",
        ),
    ],
)
async def test_sync_embed_rules(
    live_server: Any, http: aiohttp.ClientSession, fields: dict[str, str], code: str, param: str
) -> None:
    s = live_server
    assert_error(
        *await call(http, "POST", s.url("embed"), headers=s.headers, data=form(fields)),
        400,
        code,
        param,
    )


async def test_sync_embed_bad_media(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = live_server
    for field in ("image_file", "audio_file"):
        data = aiohttp.FormData()
        data.add_field("model_name", MODEL)
        data.add_field(
            field,
            b"definitely not media",
            filename="x.bin",
            content_type="application/octet-stream",
        )
        assert_error(
            *await call(http, "POST", s.url("embed"), headers=s.headers, data=data),
            400,
            "parameter_invalid",
            field,
        )


# -- idempotency ---------------------------------------------------------------------------------


async def test_idempotency_key(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    s = await live_server_factory(api_keys=("key-a", "key-b"))
    video = video_factory()

    async def post(key: str, idem: str, fields: dict[str, Any]) -> tuple[int, Any]:
        status, body, _ = await call(
            http,
            "POST",
            s.url("embed/tasks"),
            headers={"x-api-key": key, "Idempotency-Key": idem},
            data=form(fields, {"video_file": video}),
        )
        return status, body

    status, first = await post("key-a", "job-1", {"model_name": MODEL})
    assert status == 200
    # Same key: same id, whatever the body (even an invalid one).
    assert (await post("key-a", "job-1", {"model_name": MODEL}))[1] == first
    assert (await post("key-a", "job-1", {"model_name": MODEL, "video_clip_length": "99"}))[
        1
    ] == first
    # Another API key with the same idempotency key gets its own task.
    status, other = await post("key-b", "job-1", {"model_name": MODEL})
    assert status == 200 and other != first
    _, listing, _ = await call(http, "GET", s.url("embed/tasks"), headers={"x-api-key": "key-a"})
    assert [t["_id"] for t in listing["data"]] == [first["_id"]]
    # Concurrent repeats create one task.
    results = await asyncio.gather(
        *(post("key-a", "job-2", {"model_name": MODEL}) for _ in range(5))
    )
    assert len({body["_id"] for _, body in results}) == 1
    assert all(status == 200 for status, _ in results)
    status, body, headers = await call(
        http,
        "POST",
        s.url("embed/tasks"),
        headers={"x-api-key": "key-a", "Idempotency-Key": "x" * 256},
        data=form({"model_name": MODEL}),
    )
    assert_error(status, body, headers, 400, "parameter_invalid", "Idempotency-Key")


# -- rate limits -------------------------------------------------------------------------------


async def test_rate_limit_headers_and_429(
    live_server_factory: Any, http: aiohttp.ClientSession
) -> None:
    s = await live_server_factory(rate_limit=RateLimit(3, 60.0), api_keys=("key-a", "key-b"))
    a = {"x-api-key": "key-a"}
    seen = []
    for _ in range(3):
        status, _, headers = await call(http, "GET", s.url("embed/tasks"), headers=a)
        assert status == 200
        assert headers["X-Ratelimit-Limit"] == "3"
        seen.append(int(headers["X-Ratelimit-Remaining"]))
        assert int(headers["X-Ratelimit-Reset"]) >= int(datetime.now(UTC).timestamp())
    assert seen == [2, 1, 0]
    status, body, headers = await call(http, "GET", s.url("embed/tasks"), headers=a)
    assert_error(status, body, headers, 429, "too_many_requests")
    assert 1 <= int(headers["Retry-After"]) <= 20
    assert headers["X-Ratelimit-Remaining"] == "0"
    # Errors count too, other keys have their own bucket, 401s are not limited.
    assert (await call(http, "GET", s.url("embed/tasks"), headers={"x-api-key": "key-b"}))[0] == 200
    assert (await call(http, "GET", s.url("embed/tasks")))[0] == 401
    assert (await call(http, "GET", s.url("health")))[0] == 200


def test_parse_rate_limit() -> None:
    assert parse_rate_limit("100/min") == RateLimit(100, 60.0)
    assert parse_rate_limit("5/s") == RateLimit(5, 1.0)
    assert parse_rate_limit("300/5m") == RateLimit(300, 300.0)
    assert parse_rate_limit("off") is None
    with pytest.raises(ValueError):
        parse_rate_limit("fast")


# -- progress, worker crash, durability ------------------------------------------------------------


async def _processing_with_progress(
    http: aiohttp.ClientSession, s: Any, task_id: str, wait_until: Wait
) -> Any:
    async def progressed() -> Any:
        _, body, _ = await call(
            http, "GET", s.url(f"embed/tasks/{task_id}/status"), headers=s.headers
        )
        return body if body.get("progress", {}).get("clips_done", 0) >= 1 else None

    return await wait_until(progressed, timeout=30)


async def test_progress_and_worker_crash(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any, wait_until: Wait
) -> None:
    s = await live_server_factory(backend=SLOW_BACKEND, worker_init=WORKER_INIT)
    video = video_factory(duration=10)
    _, body = await create(http, s, video, video_clip_length="2")
    task_id = body["_id"]
    status = await _processing_with_progress(http, s, task_id, wait_until)
    assert status["status"] == "processing"
    assert status["progress"]["clips_total"] == 5
    assert 1 <= status["progress"]["clips_done"] < 5

    import os
    import signal

    from aioembed.server._keys import DISPATCHER

    pids = s.app[DISPATCHER].pool.stats()["pids"]
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    done = await wait_done(http, s, task_id)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "worker_crashed"
    assert "SIGKILL" in done["error"]["message"]
    # The pool is rebuilt: the next task runs on a fresh worker.
    _, body = await create(http, s, video_factory(duration=5), video_clip_length="5")
    assert (await wait_done(http, s, body["_id"]))["status"] == "ready"
    assert s.app[DISPATCHER].pool.stats()["pids"] != pids


async def test_restart_resumes_processing_tasks(
    live_server_factory: Any,
    http: aiohttp.ClientSession,
    video_factory: Any,
    wait_until: Wait,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "shared-data"
    s = await live_server_factory(data_dir=data_dir, backend=SLOW_BACKEND, worker_init=WORKER_INIT)
    _, body = await create(http, s, video_factory(duration=10), video_clip_length="2")
    task_id = body["_id"]
    await _processing_with_progress(http, s, task_id, wait_until)
    await s.runner.cleanup()  # a graceful stop mid-task
    s2 = await live_server_factory(data_dir=data_dir)
    done = await wait_done(http, s2, task_id)
    assert done["status"] == "ready", done


async def test_data_dir_is_locked_and_must_be_usable(
    live_server: Any, live_server_factory: Any, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="in use"):
        await live_server_factory(data_dir=live_server.data_dir)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(RuntimeError, match="not usable"):
        await live_server_factory(data_dir=blocker / "data")


# -- subprocess: CLI, kill -9 durability ----------------------------------------------------------


async def test_kill_9_mid_task_loses_nothing(
    server_process: Any,
    http: aiohttp.ClientSession,
    video_factory: Any,
    wait_until: Wait,
    tmp_path: Path,
) -> None:
    srv = server_process(
        tmp_path / "durable",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
    )
    video = video_factory(duration=10)
    status, body, _ = await call(
        http,
        "POST",
        srv.url("embed/tasks"),
        headers={**srv.headers, "Idempotency-Key": "k9"},
        data=form({"model_name": MODEL, "video_clip_length": "2"}, {"video_file": video}),
    )
    assert status == 200, body
    task_id = body["_id"]
    await _processing_with_progress(http, srv, task_id, wait_until)
    srv.kill()  # kill -9, mid-processing

    srv.start()
    http = aiohttp.ClientSession()  # the old one's pooled connections died with the server
    try:
        await _after_restart(http, srv, video, body, task_id)
    finally:
        await http.close()


async def _after_restart(
    http: aiohttp.ClientSession, srv: Any, video: Path, body: Any, task_id: str
) -> None:
    _, again, _ = await call(
        http,
        "POST",
        srv.url("embed/tasks"),
        headers={**srv.headers, "Idempotency-Key": "k9"},
        data=form({"model_name": MODEL}, {"video_file": video}),
    )
    assert again == body  # the idempotency key survived the crash
    done = await wait_done(http, srv, task_id)
    assert done["status"] == "ready", done
    _, full, _ = await call(http, "GET", srv.url(f"embed/tasks/{task_id}"), headers=srv.headers)
    got = np.array([x["float"] for x in full["video_embedding"]["segments"]], dtype=np.float32)

    _, listing, _ = await call(http, "GET", srv.url("embed/tasks"), headers=srv.headers)
    assert [t["_id"] for t in listing["data"]] == [task_id]  # no duplicate
    counts = srv.counts()
    assert counts[(TASKS, "POST", 200)] == 1  # since the restart

    # A clean run of the same input on the same server: identical vectors (the
    # engine is deterministic; the interrupted first attempt left no trace).
    _, clean = await create(http, srv, video, video_clip_length="2")
    assert (await wait_done(http, srv, clean["_id"]))["status"] == "ready"
    _, clean_full, _ = await call(
        http, "GET", srv.url(f"embed/tasks/{clean['_id']}"), headers=srv.headers
    )
    want = np.array([x["float"] for x in clean_full["video_embedding"]["segments"]], np.float32)
    assert got.shape == want.shape == (10, 1024)  # 5 clips x (visual-text, audio)
    np.testing.assert_array_equal(got, want)


def test_cli_generates_a_key_and_reports_errors(server_process: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOEMBED_API_KEY")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aioembed.server",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "gen"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        key_line = proc.stdout.readline()
        url_line = proc.stdout.readline()
        key_file = tmp_path / "gen" / "api.key"
        assert key_line == f"aioembed api key: generated in {key_file}\n"  # never the key
        assert re.fullmatch(r"aioembed serving on http://127\.0\.0\.1:\d+/v1\.3\n", url_line)
        key = key_file.read_text().strip()
        assert re.fullmatch(r"aioembed-[0-9a-f]{32}", key)
        import urllib.request

        req = urllib.request.Request(
            url_line.split()[-1] + "/embed/tasks", headers={"x-api-key": key}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aioembed.server",
            "--port",
            "0",
            "--api-key",
            "k",
            "--data-dir",
            str(blocker),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not usable" in result.stderr


def _free_port_in_use() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    with _free_port_in_use() as sock:
        port = sock.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "aioembed.server",
                "--port",
                str(port),
                "--api-key",
                "k",
                "--data-dir",
                str(tmp_path / "d"),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "error" in result.stderr.lower()
    assert math.isfinite(port)
