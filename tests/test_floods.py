"""Floods: a 429 storm, a crowd of clients polling status, a burst of big uploads.

Every server here is a real ``python -m aioembed.server`` process on loopback;
requests are counted by the server itself (``/metrics``) and memory is its
resident set (psutil). The figures are printed (``-s``) and recorded with
:func:`_faults.report`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _faults import RssSampler, percentile, report

from aioembed import AsyncClient, BatchItem, Limits, TaskStatus

TASKS = "/v1.3/embed/tasks"
STATUS = "/v1.3/embed/tasks/{task_id}/status"
MB = 1024 * 1024


def metrics(srv: Any, key: str) -> Any:
    """``/metrics`` with another key (rate limits are per key: the storm's bucket is untouched);
    an operator key (``--admin-key``) sees every key's requests, a plain key its own."""
    import json
    import urllib.request

    req = urllib.request.Request(srv.url("metrics"), headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def counts(data: Any, status: int | None = None) -> int:
    return sum(r["count"] for r in data["requests"] if status is None or r["status"] == status)


class RetryDelays(logging.Handler):
    """The SDK's retry decisions (``aioembed`` DEBUG log): the delay and what caused it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.delays: list[tuple[str, float, float | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying ") and isinstance(record.args, tuple):
            exc = record.args[-1]
            self.delays.append(
                (type(exc).__name__, float(record.args[2]), getattr(exc, "retry_after", None))
            )


# -- 429 storm ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "per_sec", "tasks"),
    [
        # Low enough that even a client slowed by a loaded machine outruns it.
        pytest.param("5/0.25s", 5, 20.0, 60, id="20-per-s"),
        pytest.param("10/1s", 10, 10.0, 200, id="10-per-s", marks=pytest.mark.slow),
    ],
)
async def test_429_storm_batch_completes_honouring_retry_after(
    server_process: Any,
    video_factory: Any,
    tmp_path: Path,
    rate: str,
    burst: int,
    per_sec: float,
    tasks: int,
) -> None:
    srv = server_process(
        tmp_path / "storm-data", "--workers", "2", "--rate-limit", rate, "--admin-key", "observer"
    )
    video = video_factory(duration=4, fps=5, seed=81)
    items = [BatchItem(video_file=video, key=f"item-{i}") for i in range(tasks)]
    handler = RetryDelays()
    logger = logging.getLogger("aioembed")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    started = time.monotonic()
    try:
        async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:  # default policy
            batch = client.embed.tasks.embed_many(
                items,
                concurrency=32,
                dedupe=False,
                embedding_option=["visual-text"],
                sleep_interval=0.5,
            )
            async with batch as stream:
                outcomes = [o async for o in stream]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    took = time.monotonic() - started
    data = metrics(srv, "observer")

    errors = [o.error for o in outcomes if not o.ok]
    assert len(outcomes) == tasks and not errors, errors[:3]
    assert len({o.task_id for o in outcomes}) == tasks
    limited = counts(data, 429)
    answered = counts(data) - limited
    assert limited > 0, "the storm never happened"
    # Retry-After honoured: every 429 was followed by a wait of at least Retry-After
    # (whole seconds, >= 1), so the 429s stay within one per in-flight request per second.
    waits = [(delay, after) for kind, delay, after in handler.delays if kind == "RateLimitError"]
    assert len(waits) == limited, (len(waits), limited)
    assert all(after is not None and after >= 1 and delay >= after for delay, after in waits)
    max_in_flight = Limits().max_requests
    assert limited <= max_in_flight * (took + 1), (limited, took)
    # The server let through no more than its bucket allows (burst + rate x time).
    assert answered <= burst + per_sec * took + 5
    report(
        f"429-storm-{rate}",
        tasks=tasks,
        errors_surfaced=len(errors),
        seconds=round(took, 1),
        requests_answered=answered,
        responses_429=limited,
        min_wait_after_429_s=round(min(d for d, _ in waits), 2),
        requests_per_s=round((answered + limited) / took, 1),
    )


async def test_a_crowd_told_to_wait_is_not_failed(
    server_process: Any, video_factory: Any, tmp_path: Path
) -> None:
    """30 concurrent calls against 5 requests/s: the last ones are told "Retry-After: 1"
    five times or more before their turn comes. Waiting one's turn is not a failure:
    with the default policy every call succeeds, paced by the server's Retry-After."""
    srv = server_process(tmp_path / "crowd-data", "--rate-limit", "5/1s", "--admin-key", "observer")
    video = video_factory(duration=4, fps=5, seed=85)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        task = await c.embed.tasks.create(video_file=video)  # one token of the 5 taken
    started = time.monotonic()
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:  # default policy
        results = await asyncio.gather(
            *(c.embed.tasks.status(task.id) for _ in range(30)), return_exceptions=True
        )
    took = time.monotonic() - started
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == []
    limited = counts(metrics(srv, "observer"), 429)
    # 5 served per second: rounds of 26, 21, 16, 11, 6, 1 refusals, each waiting >= 1 s.
    assert 26 <= limited <= 30 * 7, limited
    assert 4.0 <= took < 15.0, took
    report(
        "429-crowd", calls=30, failures=len(failed), responses_429=limited, seconds=round(took, 1)
    )


# -- a crowd polling status ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clients", "polls"),
    [
        pytest.param(300, 5, id="300-clients"),
        pytest.param(1000, 5, id="1000-clients", marks=pytest.mark.slow),
    ],
)
async def test_many_concurrent_clients_polling_status(
    server_process: Any, video_factory: Any, tmp_path: Path, clients: int, polls: int
) -> None:
    # Every client is on 127.0.0.1: the per-address connection cap must fit them all.
    caps = ["--max-connections", str(clients + 256), "--max-connections-per-ip", str(clients + 64)]
    srv = server_process(tmp_path / "poll-data", "--workers", "2", *caps)
    video = video_factory(duration=4, fps=5, seed=82)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        ids = [(await c.embed.tasks.create(video_file=video)).id for _ in range(10)]
    latencies: list[float] = []
    failures: list[str] = []
    statuses: set[str] = set()
    gate = asyncio.Event()

    async def one_client(n: int) -> None:
        # Each client is its own session and connection, as separate programs would be.
        rng = random.Random(n)
        async with aiohttp.ClientSession(headers=srv.headers) as http:
            await gate.wait()
            for _ in range(polls):
                url = srv.url(f"embed/tasks/{rng.choice(ids)}/status")
                started = time.monotonic()
                try:
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=60)) as resp:
                        body = await resp.json()
                        if resp.status != 200:
                            failures.append(f"{resp.status} {body}")
                            continue
                        statuses.add(body["status"])
                except (aiohttp.ClientError, TimeoutError) as e:
                    failures.append(repr(e))
                    continue
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(rng.uniform(0.0, 0.05))

    runners = [asyncio.create_task(one_client(n)) for n in range(clients)]
    await asyncio.sleep(0)  # every client waiting at the gate
    started = time.monotonic()
    gate.set()
    await asyncio.gather(*runners)
    took = time.monotonic() - started

    assert failures == []
    assert len(latencies) == clients * polls
    assert statuses <= {"processing", "ready"}
    server_count = counts(metrics(srv, srv.api_key), 200)
    assert server_count >= clients * polls
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    assert p99 < 10.0, p99
    report(
        f"status-flood-{clients}",
        clients=clients,
        requests=len(latencies),
        failures=len(failures),
        p50_ms=round(p50 * 1000, 1),
        p99_ms=round(p99 * 1000, 1),
        max_ms=round(max(latencies) * 1000, 1),
        requests_per_s=round(len(latencies) / took),
    )


# -- an upload flood ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uploads", "size_mb", "over_cap", "cap"),
    [
        pytest.param(5, 20, 2, "30M", id="5x20MB"),
        pytest.param(20, 100, 0, None, id="20x100MB", marks=pytest.mark.slow),
    ],
)
async def test_upload_flood_keeps_server_memory_flat(
    server_process: Any,
    video_factory: Any,
    tmp_path: Path,
    uploads: int,
    size_mb: int,
    over_cap: int,
    cap: str | None,
) -> None:
    from _faults import padded

    args = ["--workers", "2", *(["--max-upload-bytes", cap] if cap else [])]
    srv = server_process(tmp_path / "upload-data", *args)
    base = video_factory(duration=4, fps=5, seed=83)
    files = [padded(base, tmp_path / f"up{i:02d}.mp4", size_mb * MB) for i in range(uploads)]
    big = [padded(base, tmp_path / f"over{i}.mp4", 40 * MB) for i in range(over_cap)]
    limits = Limits(max_uploads=uploads + over_cap, max_connections=64)
    async with AsyncClient(srv.api_key, base_url=srv.base_url, limits=limits) as c:
        # Warm up (workers started, first request served) before the baseline.
        warm = await c.embed.tasks.create(video_file=base)
        await c.embed.tasks.wait(warm.id, sleep_interval=0.05)
        with RssSampler(srv.pid) as server_rss, RssSampler(srv.pid, children=True) as tree_rss:
            await asyncio.sleep(0.2)
            baseline = server_rss.rss()
            started = time.monotonic()
            results = await asyncio.gather(
                *(c.embed.tasks.create(video_file=f) for f in files + big), return_exceptions=True
            )
            took = time.monotonic() - started
        ok = [r for r in results[:uploads] if not isinstance(r, BaseException)]
        refused = [r for r in results[uploads:] if isinstance(r, BaseException)]
        assert len(ok) == uploads, [r for r in results[:uploads] if isinstance(r, BaseException)]
        assert len(refused) == over_cap
        assert all(getattr(e, "status", None) == 413 for e in refused), refused
        assert all(getattr(e, "code", None) == "video_filesize_too_large" for e in refused)
        for handle in ok:
            task = await c.embed.tasks.wait(handle.id, sleep_interval=0.1, timeout=120)
            assert task.status is TaskStatus.READY
    assert list((srv.data_dir / "uploads").iterdir()) == []
    # Flat: what the server holds grows with the uploads in flight (a few receive buffers
    # each), never with their size (20 x 100 MB would be 2 GB).
    growth = server_rss.peak - baseline
    total = uploads * size_mb * MB + over_cap * 40 * MB
    bound = 16 * MB + 4 * MB * (uploads + over_cap)
    assert growth < bound, f"server RSS grew by {growth / MB:.0f} MB for {total / MB:.0f} MB"
    report(
        f"upload-flood-{uploads}x{size_mb}MB",
        uploads=uploads,
        mb_each=size_mb,
        refused_413=len(refused),
        seconds=round(took, 1),
        server_rss_baseline_mb=round(baseline / MB, 1),
        server_rss_peak_mb=round(server_rss.peak / MB, 1),
        server_rss_growth_mb=round(growth / MB, 1),
        tree_rss_peak_mb=round(tree_rss.peak / MB, 1),
        mb_per_s=round(total / MB / took),
    )


async def test_uploads_refused_mid_body_leave_no_file_open(
    server_process: Any, video_factory: Any, tmp_path: Path
) -> None:
    """Hundreds of concurrent uploads answered before their body is sent (wrong key: 401;
    over the cap: 413): aiohttp cancels each body writer at once, and none of the files the
    SDK opened for them may be left for the garbage collector (a ResourceWarning fails
    this test) or stay open."""
    import gc
    import os

    from _faults import padded

    from aioembed import AuthenticationError, PayloadTooLargeError, RetryPolicy

    srv = server_process(tmp_path / "refuse-data", "--max-upload-bytes", "1M")
    big = padded(video_factory(duration=4, fps=5, seed=84), tmp_path / "big.mp4", 3 * MB)
    limits = Limits(max_uploads=64, max_connections=64, max_requests=64)
    once = RetryPolicy(attempts=1)
    for key, error in (("wrong-key", AuthenticationError), (srv.api_key, PayloadTooLargeError)):
        async with AsyncClient(key, base_url=srv.base_url, limits=limits, retry=once) as c:
            for _ in range(4):
                results = await asyncio.gather(
                    *(c.embed.tasks.create(video_file=big) for _ in range(64)),
                    return_exceptions=True,
                )
                assert all(isinstance(r, error) for r in results), results[:3]
    gc.collect()
    fds = Path(f"/proc/{os.getpid()}/fd")
    still_open = [p for p in fds.iterdir() if _target(p) == str(big)]
    assert still_open == []
    assert list((srv.data_dir / "uploads").iterdir()) == []


def _target(p: Path) -> str:
    import os

    try:
        return os.readlink(p)
    except OSError:
        return ""
