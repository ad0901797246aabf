"""Small inputs that cost a decoder a lot, and slow jobs, against a real server (issue 11,
items 7, 9-12).

Every bomb is generated here (:mod:`_bombs`: PyAV, zlib), sent over loopback,
and the worker processes' peak resident memory is sampled with psutil
(``FIGURES`` lines; ``-s`` shows them). The ``slow`` versions use the sizes from
the report (16000x16000); the default run uses small ones against lowered
limits, which go through the same checks. The engine-level checks themselves are
in ``test_engine_limits.py``; these prove the server passes its limits down.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _bombs import PeakRSS, SleepJob, many_streams_video, png_bomb, size_change_video
from _faults import report, set_mkv_duration

from aioembed import AsyncClient
from aioembed.server import MediaLimits
from aioembed.server import main as serve_main
from aioembed.server._keys import DISPATCHER, PROBE_POOL, SYNC_POOL
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT

MODEL = "marengo3.0"


async def _embed_file(
    server: Any, http: aiohttp.ClientSession, field: str, data: bytes, name: str
) -> tuple[int, Any, float]:
    form = aiohttp.FormData()
    form.add_field("model_name", MODEL)
    form.add_field(field, io.BytesIO(data), filename=name)
    started = time.monotonic()
    async with http.post(server.url("embed"), data=form, headers=server.headers) as r:
        return r.status, await r.json(), time.monotonic() - started


def _worker_pids(server: Any) -> list[int | None]:
    app = server.app
    pools = (app[SYNC_POOL], app[PROBE_POOL], app[DISPATCHER].pool)
    return [pid for pool in pools for pid in pool.stats()["pids"]]


async def _run_size_change(server: Any, video: Path) -> tuple[Any, float]:
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        with PeakRSS(lambda: _worker_pids(server)) as peak:
            task = await client.embed.tasks.create(model_name=MODEL, video_file=video)
            status = await client.embed.tasks.wait(
                task.id, sleep_interval=0.1, timeout=120, raise_on_failure=False
            )
        return status, peak.mb


async def test_resolution_change_mid_stream_fails_the_task(
    live_server_factory: Any, tmp_path: Path
) -> None:
    video = size_change_video(tmp_path / "switch.ts", 1000)
    limits = MediaLimits(max_width=960, max_height=960)
    server = await live_server_factory(media_limits=limits)
    status, peak_mb = await _run_size_change(server, video)
    assert status.status == "failed", status
    assert status.error is not None and status.error.code == "video_resolution_too_high"
    assert "1000x1000 (from 5.00 s on)" in status.error.message, status.error.message
    report("size_change_1000", file_kb=video.stat().st_size // 1024, worker_peak_mb=peak_mb)


@pytest.mark.slow
async def test_resolution_bomb_16000(live_server_factory: Any, tmp_path: Path) -> None:
    video = size_change_video(tmp_path / "bomb.ts", 16000)
    server = await live_server_factory()
    status, peak_mb = await _run_size_change(server, video)
    assert status.status == "failed" and status.error is not None
    assert status.error.code == "video_resolution_too_high", status.error
    report("size_change_16000", file_kb=video.stat().st_size // 1024, worker_peak_mb=peak_mb)
    assert peak_mb < 1200, peak_mb


async def _image_bomb(server: Any, http: aiohttp.ClientSession, png: Path) -> tuple[Any, ...]:
    with PeakRSS(lambda: _worker_pids(server)) as peak:
        status, body, seconds = await _embed_file(
            server, http, "image_file", png.read_bytes(), png.name
        )
    return status, body, seconds, peak.mb


async def test_image_pixels_checked_before_decoding(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    png = png_bomb(tmp_path / "big.png", 2500)
    server = await live_server_factory(max_image_pixels=4_000_000)
    status, body, seconds, peak_mb = await _image_bomb(server, http, png)
    assert status == 400 and body["code"] == "parameter_invalid", body
    assert body["message"].startswith(
        "The image_file parameter is invalid. The image is 2500x2500"
    ), body
    report(
        "png_2500_rgba64",
        file_kb=png.stat().st_size // 1024,
        seconds=round(seconds, 2),
        worker_peak_mb=peak_mb,
    )


@pytest.mark.slow
async def test_image_bomb_16000(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    png = png_bomb(tmp_path / "bomb.png", 16000)
    server = await live_server_factory()
    status, body, seconds, peak_mb = await _image_bomb(server, http, png)
    assert status == 400 and "16000x16000" in body["message"], body
    report(
        "png_16000_rgba64",
        file_kb=png.stat().st_size // 1024,
        seconds=round(seconds, 2),
        worker_peak_mb=peak_mb,
    )
    assert peak_mb < 400, peak_mb


@pytest.mark.parametrize("limit_mb", [256, None], ids=["capped", "uncapped"])
async def test_worker_memory_limit_fails_the_input_not_the_worker(
    live_server_factory: Any, http: aiohttp.ClientSession, tmp_path: Path, limit_mb: int | None
) -> None:
    """5000x5000 RGBA64 decodes to 200 MB: over a 256 MiB cap it is a clean 400 with its
    own code, the worker lives on and takes the next job; uncapped, it just works."""
    png = png_bomb(tmp_path / "big.png", 5000)
    limit = None if limit_mb is None else limit_mb * 1024**2
    server = await live_server_factory(max_image_pixels=10**9, worker_memory_limit=limit)
    status, body, _, peak_mb = await _image_bomb(server, http, png)
    report(f"memory_limit_{limit_mb}M_png_5000", worker_peak_mb=peak_mb)
    stats = server.app[SYNC_POOL].stats()
    assert stats["crashes"] == 0, stats
    if limit_mb is None:
        assert status == 200, body
        return
    assert status == 400 and body["code"] == "memory_limit_exceeded", body
    assert "(256 MiB)" in body["message"], body
    assert stats["recycled"] == 1, stats  # a process that hit its cap is not reused
    small = png_bomb(tmp_path / "small.png", 400)
    status, body, _ = await _embed_file(server, http, "image_file", small.read_bytes(), "s.png")
    assert status == 200, body


@pytest.mark.slow
async def test_memory_limit_fails_a_task_with_its_code(
    live_server_factory: Any, tmp_path: Path
) -> None:
    """A video task whose decoder needs more than the cap (8000x8000 pictures, allowed by
    the resolution limits here) ends ``failed`` with ``memory_limit_exceeded``.

    ``slow``: about one run in fifteen, FFmpeg's frame threads report the failed
    allocation as a damaged packet, which is skipped, and the task ends ``ready`` with
    frames missing (a known gap). The cap itself is covered by the default run's
    image test (:func:`test_worker_memory_limit_fails_the_input_not_the_worker`)."""
    video = size_change_video(tmp_path / "big.ts", 8000)
    server = await live_server_factory(
        media_limits=MediaLimits(max_width=8000, max_height=8000),
        worker_memory_limit=256 * 1024**2,
    )
    status, peak_mb = await _run_size_change(server, video)
    assert status.status == "failed" and status.error is not None, status
    assert status.error.code == "memory_limit_exceeded", status.error
    assert "(256 MiB)" in status.error.message
    assert server.app[DISPATCHER].pool.stats()["crashes"] == 0
    report("memory_limit_256M_video_8000", worker_peak_mb=peak_mb)


@pytest.mark.parametrize("declared", [1e8, 1e12])
async def test_audio_duration_is_capped_before_spans(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any, declared: float
) -> None:
    mkv = Path(video_factory(duration=5, fps=5, suffix=".mkv")).read_bytes()
    data = set_mkv_duration(mkv, declared)
    with PeakRSS(lambda: _worker_pids(live_server)) as peak:
        status, body, seconds = await _embed_file(live_server, http, "audio_file", data, "a.mkv")
    assert status == 400 and body["code"] == "parameter_invalid", body
    assert body["message"].startswith(
        "The audio_file parameter is invalid. The audio is too long"
    ), body
    assert "at most 7200 seconds" in body["message"], body
    report(
        f"audio_declares_{declared:g}s",
        file_kb=len(data) // 1024,
        seconds=round(seconds, 2),
        worker_peak_mb=peak.mb,
    )


async def _create(server: Any, video: Path) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("model_name", MODEL)
        form.add_field("video_file", io.BytesIO(video.read_bytes()), filename=video.name)
        async with http.post(server.url("embed/tasks"), data=form, headers=server.headers) as r:
            return r.status, await r.json()


async def _rss_left_by(server: Any, video: Path, wait_until: Any) -> tuple[float, list[int]]:
    """Create a task with ``video`` (probed at create), then the resident MB its probe
    worker reported after the job, and the live workers' resident memory once any
    recycle is over."""
    import psutil

    pool = server.app[PROBE_POOL]
    status, body = await _create(server, video)
    assert status == 400 and body["code"] == "video_resolution_too_low", body
    reported = round(max(pool.stats()["rss_after_job"]) / 2**20, 1)

    async def recycled() -> bool:
        return pool.stats()["recycling"] == 0

    await wait_until(recycled)
    now = [psutil.Process(pid).memory_info().rss >> 20 for pid in pool.stats()["pids"]]
    return reported, now


@pytest.mark.parametrize(("streams", "max_rss_mb"), [(200, 128), (200, None)])
async def test_worker_left_holding_memory_is_replaced(
    live_server_factory: Any, tmp_path: Path, wait_until: Any, streams: int, max_rss_mb: int | None
) -> None:
    """An MKV with many video streams leaves its worker holding ~1 MB per stream after
    the job; over ``worker_max_rss`` the process is replaced (and the slot still works)."""
    video = many_streams_video(tmp_path / "streams.mkv", streams)
    limit = None if max_rss_mb is None else max_rss_mb * 2**20
    server = await live_server_factory(worker_max_rss=limit)
    reported, now = await _rss_left_by(server, video, wait_until)
    stats = server.app[PROBE_POOL].stats()
    report(
        f"streams_{streams}_max_rss_{max_rss_mb}M",
        rss_after_job_mb=reported,
        live_workers_rss_mb=now,
        recycled=stats["recycled"],
    )
    assert reported > 128, reported  # the file does hold memory
    assert stats["crashes"] == 0, stats
    if max_rss_mb is None:
        assert stats["recycled"] == 0 and now and now[0] > 128, (stats, now)
        return
    assert stats["recycled"] == 1 and now == [], (stats, now)
    status, body = await _create(server, video)  # the slot takes the next job
    assert status == 400 and body["code"] == "video_resolution_too_low", body


@pytest.mark.slow
async def test_900_streams_worker_replaced_at_default(
    live_server_factory: Any, tmp_path: Path, wait_until: Any
) -> None:
    video = many_streams_video(tmp_path / "streams.mkv", 900)
    server = await live_server_factory()
    reported, now = await _rss_left_by(server, video, wait_until)
    stats = server.app[PROBE_POOL].stats()
    report("streams_900_default", rss_after_job_mb=reported, live_workers_rss_mb=now)
    assert reported > 512 and stats["recycled"] == 1 and now == [], (reported, stats, now)


async def test_tasks_complete_when_workers_are_recycled_after_each_job(
    live_server_factory: Any, video_factory: Any
) -> None:
    """``worker_max_jobs=1``: every task's worker is replaced after it, and every task
    still ends ``ready`` (the answer is in before the process is stopped)."""
    server = await live_server_factory(worker_max_jobs=1)
    pool = server.app[DISPATCHER].pool
    videos = [Path(video_factory(duration=4.0, fps=5, seed=i)) for i in range(3)]
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        for video in videos:
            task = await client.embed.tasks.create(model_name=MODEL, video_file=video)
            status = await client.embed.tasks.wait(task.id, sleep_interval=0.05, timeout=60)
            assert status.status == "ready", status
    stats = pool.stats()
    # One process per task: started three times, each stopped after its task.
    assert (stats["starts"], stats["recycled"], stats["crashes"]) == (3, 3, 0), stats


class _Held:
    """``pool`` kept busy by a :class:`SleepJob` until the block ends."""

    def __init__(self, pool: Any, seconds: float = 60.0) -> None:
        self.pool = pool
        self.seconds = seconds

    async def __aenter__(self) -> None:
        self.task = asyncio.create_task(self.pool.run(SleepJob(self.seconds), timeout=120))
        while not self.pool.stats()["busy"]:  # the job has reached the worker
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: Any) -> None:
        self.task.cancel()  # kills the sleeping worker
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def _create_seconds(server: Any, video: Path) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = await _create(server, video)
    return status, body, time.monotonic() - started


async def test_create_does_not_queue_behind_sync_embeds(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """The sync worker is held (slow ``/embed`` work): a video create is probed at once in
    the probe pool, and ``/embed`` itself answers ``503`` at its deadline, not later."""
    server = await live_server_factory(sync_timeout=1.0)
    video = Path(video_factory(duration=4.0, fps=5))
    audio = Path(video_factory.audio(duration=4.0)).read_bytes()
    async with _Held(server.app[SYNC_POOL]):
        status, body, create_seconds = await _create_seconds(server, video)
        assert status == 200 and body["_id"], body
        status, body, embed_seconds = await _embed_file(server, http, "audio_file", audio, "a.wav")
        assert status == 503 and body["code"] == "server_busy", body
        assert "no sync worker was free within 1 s" in body["message"], body
    assert create_seconds < 10, create_seconds  # the held worker would take 60 s
    assert embed_seconds < 10, embed_seconds
    report(
        "create_while_sync_held",
        create_seconds=round(create_seconds, 2),
        embed_busy_seconds=round(embed_seconds, 2),
    )


async def test_slow_probe_holds_neither_embeds_nor_other_creates_past_deadline(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """A slow probe holds the probe worker: ``/embed`` is not slowed, and another create
    gets ``503 server_busy`` at ``probe_timeout`` (its wait counts)."""
    server = await live_server_factory(probe_timeout=1.0)
    video = Path(video_factory(duration=4.0, fps=5))
    audio = Path(video_factory.audio(duration=4.0)).read_bytes()
    _, _, cold = await _embed_file(server, http, "audio_file", audio, "a.wav")  # starts it
    _, _, alone = await _embed_file(server, http, "audio_file", audio, "a.wav")
    async with _Held(server.app[PROBE_POOL]):
        status, body, held = await _embed_file(server, http, "audio_file", audio, "a.wav")
        assert status == 200, body
        status, body, busy_seconds = await _create_seconds(server, video)
        assert status == 503 and body["code"] == "server_busy", body
        assert "no probe worker was free within 1 s" in body["message"], body
    assert 0.9 < busy_seconds < 10, busy_seconds
    status, body, free_seconds = await _create_seconds(server, video)
    assert status == 200, body
    report(
        "slow_probe",
        embed_alone_seconds=round(alone, 3),
        embed_while_probe_held_seconds=round(held, 3),
        create_busy_seconds=round(busy_seconds, 2),
        create_after_seconds=round(free_seconds, 2),
    )


async def test_v2_create_probes_in_the_probe_pool_and_busy_is_503(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """Embed API v2 too: a base64 video create is probed in the probe pool (not behind
    the held sync worker), and a held probe pool is ``503 server_busy`` at the deadline,
    not ``400 could not be decoded``."""
    import base64

    server = await live_server_factory(probe_timeout=1.0, sync_timeout=1.0)
    video = base64.b64encode(Path(video_factory(duration=5.0, fps=5)).read_bytes()).decode()
    body = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"base64_string": video}, "embedding_option": ["visual"]},
    }

    async def create() -> tuple[int, Any]:
        url, headers = server.url("embed-v2/tasks"), server.headers
        async with http.post(url, json=body, headers=headers) as r:
            return r.status, await r.json()

    async with _Held(server.app[SYNC_POOL]):
        status, created = await create()
        assert status == 200, created
    async with _Held(server.app[PROBE_POOL]):
        status, busy = await create()
    assert status == 503 and busy["error"]["code"] == "server_busy", busy  # v2's nested body


async def test_sync_timeout_is_a_timeout(
    live_server_factory: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """The slow test backend sleeps 0.2 s per picture: past a 0.1 s deadline that is a
    ``504`` saying so (it used to be ``400 ... could not be processed``)."""
    server = await live_server_factory(
        sync_timeout=0.1, backend=SLOW_BACKEND, worker_init=WORKER_INIT
    )
    image = Path(video_factory.image()).read_bytes()
    status, body, _ = await _embed_file(server, http, "image_file", image, "i.png")
    assert status == 504 and body["code"] == "processing_timeout", body
    assert "image_file took longer than the server's limit of 0.1 s" in body["message"], body


async def test_metrics_show_the_probe_pool(live_server_factory: Any) -> None:
    server = await live_server_factory(api_keys=("k",), admin_keys=("admin",), probe_workers=2)
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url("metrics"), headers={"x-api-key": "admin"}) as r:
            body = await r.json()
    assert body["probe_workers"]["size"] == 2, body
    assert {"recycled", "rss_after_job"} <= set(body["probe_workers"]), body


def test_serve_flags_for_worker_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flags reach ``ServerConfig``; ``off`` lifts the memory cap; absent keeps the
    defaults (captured where ``serve`` would run)."""
    seen: list[Any] = []

    async def fake_serve(config: Any, **_: Any) -> None:
        seen.append(config)

    monkeypatch.setattr("aioembed.server.serve", fake_serve)
    base = ["--data-dir", str(tmp_path), "--api-key", "k"]
    assert serve_main(base) == 0
    flags = ["--decoder-threads", "0", "--worker-memory-limit", "off"]
    assert serve_main([*base, *flags, "--max-image-pixels", "1000"]) == 0
    default, custom = seen
    assert (default.decoder_threads, default.worker_memory_limit) == (2, 2 * 1024**3)
    assert default.max_image_pixels == 40_000_000
    assert (custom.decoder_threads, custom.worker_memory_limit) == (0, None)
    assert custom.max_image_pixels == 1000
    assert serve_main([*base, "--worker-memory-limit", "300M"]) == 0
    assert seen[-1].worker_memory_limit == 300 * 1024**2
    assert (default.worker_max_rss, default.worker_max_jobs) == (512 * 1024**2, None)
    assert serve_main([*base, "--worker-max-rss", "off", "--worker-max-jobs", "100"]) == 0
    assert (seen[-1].worker_max_rss, seen[-1].worker_max_jobs) == (None, 100)
    flags = ["--probe-workers", "3", "--probe-timeout", "5", "--sync-timeout", "7"]
    assert serve_main([*base, *flags]) == 0
    assert (seen[-1].probe_workers, seen[-1].probe_timeout, seen[-1].sync_timeout) == (3, 5, 7)
    assert (default.probe_workers, default.probe_timeout, default.sync_timeout) == (1, 60, 120)
