"""Embed API v2 jobs get the server's decode bounds, as v1 jobs do (issue 11, items 7, 9, 11).

A v2 task and a ``POST /embed-v2`` call run in the same workers as v1 jobs: the
video resolution is checked at every size change mid-stream, and an image's
pixels from its header before decoding. Bombs are generated here (:mod:`_bombs`),
sent over loopback as base64, and the workers' peak RSS is sampled (``FIGURES``
lines; ``-s`` shows them). The default run uses small bombs against lowered
limits; the ``slow`` ones the 16000x16000 sizes of the report and the defaults.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _bombs import PeakRSS, png_bomb, size_change_video
from _faults import report

from aioembed.server import MediaLimits
from aioembed.server._keys import DISPATCHER, PROBE_POOL, SYNC_POOL

MODEL = "marengo3.0"


def _worker_pids(server: Any) -> list[int | None]:
    app = server.app
    pools = (app[SYNC_POOL], app[PROBE_POOL], app[DISPATCHER].pool)
    return [pid for pool in pools for pid in pool.stats()["pids"]]


def _source(path: Path) -> dict[str, Any]:
    return {"media_source": {"base64_string": base64.b64encode(path.read_bytes()).decode()}}


async def _post(http: aiohttp.ClientSession, srv: Any, path: str, body: Any) -> tuple[int, Any]:
    # A file-like body: aiohttp warns about large bytes bodies (a bomb is a few MB).
    data = io.BytesIO(json.dumps(body).encode())
    headers = {**srv.headers, "Content-Type": "application/json"}
    async with http.post(srv.url(path), data=data, headers=headers) as r:
        return r.status, await r.json()


async def _task_outcome(http: aiohttp.ClientSession, srv: Any, video: Path) -> tuple[Any, float]:
    """A v2 video task on ``video`` until it ends, and the workers' peak RSS (MB)."""
    body = {"input_type": "video", "model_name": MODEL, "video": _source(video)}
    with PeakRSS(lambda: _worker_pids(srv)) as peak:
        status, created = await _post(http, srv, "embed-v2/tasks", body)
        assert status == 200, created
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            async with http.get(
                srv.url(f"embed-v2/tasks/{created['_id']}"), headers=srv.headers
            ) as r:
                task = await r.json()
            if task["status"] != "processing":
                return task, peak.mb
            await asyncio.sleep(0.1)
    raise AssertionError(f"task {created['_id']} still processing")


async def test_v2_task_resolution_change_mid_stream_fails(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    video = size_change_video(tmp_path / "switch.ts", 1000)
    server = await live_server_factory(media_limits=MediaLimits(max_width=960, max_height=960))
    task, peak_mb = await _task_outcome(http, server, video)
    assert task["status"] == "failed" and task["data"] is None, task
    # The contract's code for media outside the limits (not a broken file).
    assert task["error"]["code"] == "parameter_invalid", task
    assert "1000x1000 (from 5.00 s on) is too high" in task["error"]["message"], task
    report("v2_task_size_change_1000", worker_peak_mb=peak_mb)


async def test_v2_sync_video_resolution_change_is_refused(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    video = size_change_video(tmp_path / "switch.ts", 1000)
    server = await live_server_factory(media_limits=MediaLimits(max_width=960, max_height=960))
    body = {"input_type": "video", "model_name": MODEL, "video": _source(video)}
    status, answer = await _post(http, server, "embed-v2", body)
    assert status == 400, answer
    error = answer["error"]
    assert error["code"] == "parameter_invalid", answer
    assert error["details"]["parameter"] == "video.media_source", answer
    assert "1000x1000 (from 5.00 s on) is too high" in error["message"], answer


async def _sync_image(http: aiohttp.ClientSession, srv: Any, png: Path) -> tuple[int, Any, float]:
    body = {"input_type": "image", "model_name": MODEL, "image": _source(png)}
    with PeakRSS(lambda: _worker_pids(srv)) as peak:
        status, answer = await _post(http, srv, "embed-v2", body)
    return status, answer, peak.mb


async def test_v2_sync_image_pixels_checked_before_decoding(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    png = png_bomb(tmp_path / "big.png", 2500)
    server = await live_server_factory(max_image_pixels=4_000_000)
    status, answer, peak_mb = await _sync_image(http, server, png)
    assert status == 400, answer
    error = answer["error"]
    assert error["code"] == "parameter_invalid", answer
    assert error["details"]["parameter"] == "image.media_source", answer
    assert "The image is 2500x2500" in error["message"], answer
    report("v2_sync_png_2500", file_kb=png.stat().st_size // 1024, worker_peak_mb=peak_mb)


@pytest.mark.slow
async def test_v2_task_resolution_bomb_16000(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    video = size_change_video(tmp_path / "bomb.ts", 16000)
    server = await live_server_factory()
    task, peak_mb = await _task_outcome(http, server, video)
    report("v2_task_size_change_16000", status=task["status"], worker_peak_mb=peak_mb)
    assert task["status"] == "failed" and task["error"]["code"] == "parameter_invalid", task
    assert peak_mb < 1200, peak_mb


@pytest.mark.slow
async def test_v2_sync_image_bomb_16000(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    png = png_bomb(tmp_path / "bomb.png", 16000)
    server = await live_server_factory()
    status, answer, peak_mb = await _sync_image(http, server, png)
    report("v2_sync_png_16000", status=status, worker_peak_mb=peak_mb)
    assert status == 400 and "16000x16000" in answer["error"]["message"], answer
    assert peak_mb < 400, peak_mb
