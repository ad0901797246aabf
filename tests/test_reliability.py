"""Faults: the server, the client and a worker killed mid-batch; a full or unwritable disk;
a stalled server.

"Accepted means done": whatever dies and whenever, a batch rerun or retried to the end
embeds every input exactly once (no lost task, no duplicate task) with vectors
identical to a clean run (the engine is deterministic). Servers are real
``python -m aioembed.server`` processes on loopback; kills are real ``SIGKILL``\\ s fired
at chosen protocol moments (an upload half sent, a task half embedded, a retrieve in
flight) by hooks on the client's own connection events.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _faults import client_tasks, distinct_videos, list_all, padded, report, vectors_of

from aioembed import (
    AioEmbedError,
    AsyncClient,
    Outcome,
    RequestTimeoutError,
    RetryPolicy,
    TaskFailedError,
    TaskStatus,
    Timeouts,
    WaitTimeoutError,
)
from aioembed.client import Journal
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT

ADMIN_KEY = "operator-key"
TASKS = "/v1.3/embed/tasks"
RETRIEVE = re.compile(r"/v1\.3/embed/tasks/[0-9a-f]{24}$")
#: Long enough to ride through a server restart (about a second), retrying briskly.
RIDE_THROUGH = RetryPolicy(attempts=1000, initial_delay=0.05, max_delay=0.5, budget=90)
Wait = Callable[..., Awaitable[Any]]


@pytest.fixture
def base_video(video_factory: Any) -> Path:
    return video_factory(duration=4, fps=5, seed=71)  # type: ignore[no-any-return]


def batch_inputs(base: Path, folder: Path, n: int) -> list[Path]:
    """``n`` distinct videos; every fourth padded to 3 MB so its upload takes several chunks."""
    videos = distinct_videos(base, folder, n)
    for i in range(0, n, 4):
        big = padded(videos[i], folder / f"big{i:03d}.mp4", 3 * 1024 * 1024)
        videos[i] = big
    return videos


async def clean_vectors(
    live_server_factory: Any, inputs: list[Path]
) -> dict[str, dict[tuple[Any, ...], bytes]]:
    """The reference: the same inputs through a fresh server with nothing going wrong."""
    server = await live_server_factory(workers=2)
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        batch = client.embed.tasks.embed_many(
            inputs, concurrency=8, video_clip_length=2, sleep_interval=0.05
        )
        async with batch as outcomes:
            found = {o.item.label: o async for o in outcomes}
    assert all(o.ok for o in found.values()), [o.error for o in found.values() if not o.ok]
    return {label: vectors_of(o.task) for label, o in found.items() if o.task is not None}


class RetryLog(logging.Handler):
    """The SDK's own account of what it retried and why (``aioembed`` DEBUG records)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying "):
            exc = record.args[-1] if isinstance(record.args, tuple) else None
            self.errors.append((time.monotonic(), type(exc).__name__))


@contextlib.contextmanager
def retry_log() -> Any:
    handler = RetryLog()
    logger = logging.getLogger("aioembed")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


class Chaos:
    """Kills the server (SIGKILL) at planned moments and restarts it on the same data dir.

    ``plan`` is a list of ``(phase, not_before)``: the next kill happens at the next
    event of that phase once at least ``not_before`` outcomes were received and the
    server is back up from the previous kill. Phases: ``upload`` (a file part half
    sent), ``processing`` (a task reported mid-way through its clips), ``retrieve``
    (a retrieve request sent, its answer not yet received).
    """

    def __init__(self, srv: Any, plan: list[tuple[str, int]]) -> None:
        self.srv = srv
        self.plan = list(plan)
        self.kills: list[tuple[str, float]] = []
        self.outcomes = 0
        self._restart: asyncio.Task[str] | None = None
        self.downtimes: list[float] = []

    def _due(self, phase: str) -> bool:
        if not self.plan or (self._restart is not None and not self._restart.done()):
            return False
        want, not_before = self.plan[0]
        return want == phase and self.outcomes >= not_before

    def hit(self, phase: str) -> None:
        if not self._due(phase):
            return
        self.plan.pop(0)
        self.srv.kill()
        killed = time.monotonic()
        self.kills.append((phase, killed))

        def restart() -> str:
            url = self.srv.start()
            self.downtimes.append(time.monotonic() - killed)
            return url

        self._restart = asyncio.get_running_loop().create_task(asyncio.to_thread(restart))

    async def settle(self) -> None:
        if self._restart is not None:
            await self._restart

    # hooks -------------------------------------------------------------------------

    def on_upload(self, item: Any, sent: int, total: int | None) -> None:
        if total is not None and 0 < sent < total:
            self.hit("upload")

    async def on_status(self, update: Any) -> None:
        p = update.task.progress if update.task is not None else None
        if p is not None and 0 < p.clips_done < p.clips_total:
            self.hit("processing")

    def trace(self) -> aiohttp.TraceConfig:
        tc = aiohttp.TraceConfig()

        async def headers_sent(
            session: Any, ctx: Any, params: aiohttp.TraceRequestHeadersSentParams
        ) -> None:
            if params.method == "GET" and RETRIEVE.search(params.url.path):
                self.hit("retrieve")

        tc.on_request_headers_sent.append(headers_sent)
        return tc


async def run_batch_through_kills(
    srv: Any, inputs: list[Path], journal: Path, plan: list[tuple[str, int]], concurrency: int
) -> tuple[list[Outcome], Chaos, RetryLog]:
    chaos = Chaos(srv, plan)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=32), trace_configs=[chaos.trace()]
    )
    outcomes: list[Outcome] = []
    with retry_log() as retries:
        try:
            async with AsyncClient(
                srv.api_key, base_url=srv.base_url, retry=RIDE_THROUGH, session=session
            ) as client:
                batch = client.embed.tasks.embed_many(
                    inputs,
                    concurrency=concurrency,
                    video_clip_length=2,
                    journal=journal,
                    sleep_interval=0.05,
                    max_interval=0.3,
                    on_upload=chaos.on_upload,
                    on_status=chaos.on_status,
                )
                async with batch as stream:
                    async for o in stream:
                        outcomes.append(o)
                        chaos.outcomes += 1
            await chaos.settle()
        finally:
            await session.close()
    return outcomes, chaos, retries


async def check_exactly_once(
    srv: Any,
    inputs: list[Path],
    outcomes: list[Outcome],
    journal: Path,
    reference: dict[str, dict[tuple[Any, ...], bytes]],
) -> dict[str, int]:
    """Every input ready exactly once, no task beyond them, vectors equal to the clean run."""
    assert sorted(o.index for o in outcomes) == list(range(len(inputs)))
    failed = [(o.item.label, o.error) for o in outcomes if not o.ok]
    assert not failed, failed
    by_label = {o.item.label: o for o in outcomes}
    assert set(by_label) == {str(p) for p in inputs}
    async with AsyncClient(srv.api_key, base_url=srv.base_url, retry=RIDE_THROUGH) as client:
        tasks = await list_all(client)
    server_ids = [t.id for t in tasks]
    outcome_ids = [o.task_id for o in outcomes]
    duplicates = len(server_ids) - len(set(outcome_ids))
    lost = len(set(outcome_ids) - set(server_ids))
    assert len(set(outcome_ids)) == len(inputs)  # distinct inputs, distinct tasks
    assert sorted(server_ids) == sorted(outcome_ids), "a task the batch does not know of"
    assert {t.status for t in tasks} == {TaskStatus.READY}
    for label, o in by_label.items():
        assert o.task is not None
        assert vectors_of(o.task) == reference[label], f"vectors of {label} differ"
    j = Journal(journal)
    try:
        assert await j.counts() == {"ready": len(inputs)}
    finally:
        await j.close()
    return {"lost": lost, "duplicates": duplicates, "tasks": len(server_ids)}


def kill_plan(n: int, rounds: int, seed: int) -> list[tuple[str, int]]:
    """``rounds`` x (upload, processing, retrieve) kills at random points of the first
    half of the batch (uploads go on until its last quarter)."""
    rng = random.Random(seed)
    thresholds = sorted(rng.randrange(0, max(1, n // 2)) for _ in range(3 * rounds))
    phases = ["upload", "processing", "retrieve"] * rounds
    return list(zip(phases, thresholds, strict=True))


@pytest.mark.parametrize(
    ("n", "rounds"),
    [
        pytest.param(20, 1, id="20-videos-3-kills"),
        pytest.param(100, 3, id="100-videos-9-kills", marks=pytest.mark.slow),
    ],
)
async def test_server_killed_mid_upload_processing_and_retrieve(
    server_process: Any,
    live_server_factory: Any,
    base_video: Path,
    tmp_path: Path,
    n: int,
    rounds: int,
) -> None:
    inputs = batch_inputs(base_video, tmp_path / "in", n)
    reference = await clean_vectors(live_server_factory, inputs)
    srv = server_process(
        tmp_path / "crash-data",
        "--workers",
        "2",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.1"},
    )
    journal = tmp_path / "batch.journal.sqlite"
    plan = kill_plan(n, rounds, seed=n)
    outcomes, chaos, retries = await run_batch_through_kills(
        srv, inputs, journal, plan, concurrency=max(4, n // 8)
    )
    assert chaos.plan == [], f"kills never triggered: {chaos.plan}"
    assert [phase for phase, _ in chaos.kills] == [phase for phase, _ in plan]

    # While the server was down the SDK saw transport errors, never an HTTP error, and
    # retried them: one retry at least per kill. ``_NeverSent`` is the transport's name
    # for a refused connection (raised as TransportError if the retries ran out).
    kinds = {kind for _, kind in retries.errors}
    assert "_NeverSent" in kinds, kinds  # connection refused while the server was down
    assert kinds <= {"_NeverSent", "TransportError", "RequestTimeoutError"}, kinds
    for _, killed in chaos.kills:
        assert any(t >= killed for t, _ in retries.errors)

    # The killed servers' workers noticed and left quietly (no tracebacks).
    for log in sorted(srv.log_dir.iterdir()):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]

    figures = await check_exactly_once(srv, inputs, outcomes, journal, reference)
    assert figures["lost"] == 0 and figures["duplicates"] == 0
    # Half-received uploads and inputs of finished tasks are all gone from the data dir.
    assert list((srv.data_dir / "uploads").iterdir()) == []
    assert list((srv.data_dir / "media").iterdir()) == []
    report(
        f"server-kill-{n}",
        crashes_survived=len(chaos.kills),
        kill_phases=[p for p, _ in chaos.kills],
        videos=n,
        **figures,
        retried_errors=sorted(kinds),
        retries=len(retries.errors),
        max_downtime_s=round(max(chaos.downtimes), 2),
    )


# -- client crash ----------------------------------------------------------------------------

CHILD = r'''
"""A batch client that reports its progress on stdout and freezes at a chosen event
(so the parent's SIGKILL lands exactly there)."""
import asyncio, json, re, sys, time
import aiohttp
from aioembed import AsyncClient, RetryPolicy

base_url, key, journal, inputs_file, result_file, freeze = sys.argv[1:7]
inputs = json.loads(open(inputs_file).read())
phase, _, nth = freeze.partition(":")
seen = {}
RETRIEVE = re.compile(r"/v1\.3/embed/tasks/[0-9a-f]{24}$")


def event(kind, *detail):
    seen[kind] = seen.get(kind, 0) + 1
    print(kind, *detail, flush=True)
    if kind == phase and seen[kind] == int(nth):
        print("FROZEN", kind, flush=True)
        time.sleep(3600)  # blocks the loop: nothing moves until the parent's SIGKILL


def on_upload(item, sent, total):
    if total and 0 < sent < total:
        event("upload", item.label, sent, total)


def on_status(update):
    p = update.task.progress if update.task is not None else None
    if p is not None and 0 < p.clips_done < p.clips_total:
        event("processing", update.task_id)


async def main():
    tc = aiohttp.TraceConfig()

    async def headers_sent(session, ctx, params):
        if params.method == "GET" and RETRIEVE.search(params.url.path):
            event("retrieve", params.url.path)

    async def request_end(session, ctx, params):
        if params.method == "POST" and params.response.status == 200:
            event("created")

    tc.on_request_headers_sent.append(headers_sent)
    tc.on_request_end.append(request_end)
    results = {}
    async with aiohttp.ClientSession(trace_configs=[tc]) as session:
        retry = RetryPolicy(attempts=50, initial_delay=0.05, max_delay=0.5, budget=60)
        async with AsyncClient(key, base_url=base_url, retry=retry, session=session) as client:
            batch = client.embed.tasks.embed_many(
                inputs, concurrency=4, video_clip_length=2, journal=journal,
                sleep_interval=0.05, max_interval=0.3, on_upload=on_upload, on_status=on_status,
            )
            async with batch as outcomes:
                async for o in outcomes:
                    print("outcome", o.index, o.task_id, o.ok, o.resumed, flush=True)
                    results[o.item.label] = {"task_id": o.task_id, "ok": o.ok,
                                             "error": str(o.error) if o.error else None}
    with open(result_file, "w") as f:
        json.dump(results, f)
    print("DONE", flush=True)

asyncio.run(main())
'''


async def run_child(
    script: Path, args: list[str], freeze: str, timeout: float = 120
) -> tuple[str, list[str]]:
    """Run the batch child; SIGKILL it once it reports ``FROZEN``. Returns (how it ended, lines)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        freeze,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    ended = "exited"
    try:
        async with asyncio.timeout(timeout):
            async for raw in proc.stdout:
                line = raw.decode().rstrip("\n")
                lines.append(line)
                if line.startswith("FROZEN"):
                    proc.send_signal(signal.SIGKILL)
                    ended = "killed at " + line.split()[1]
                    break
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = (await proc.stderr.read()).decode()
    if ended == "exited":
        assert proc.returncode == 0, err[-3000:]
    else:
        assert proc.returncode == -signal.SIGKILL
    return ended, lines


@pytest.mark.parametrize(
    ("n", "kills"),
    [
        pytest.param(12, ["upload:2", "created:1", "processing:1", "retrieve:2"], id="12-videos"),
        pytest.param(
            100,
            [f"{p}:{k}" for k in (3, 7) for p in ("upload", "created", "processing", "retrieve")],
            id="100-videos",
            marks=pytest.mark.slow,
        ),
    ],
)
async def test_client_killed_mid_batch_resumes_from_its_journal(
    server_process: Any,
    live_server_factory: Any,
    base_video: Path,
    tmp_path: Path,
    n: int,
    kills: list[str],
) -> None:
    inputs = batch_inputs(base_video, tmp_path / "in", n)
    reference = await clean_vectors(live_server_factory, inputs)
    srv = server_process(
        tmp_path / "client-crash-data",
        "--workers",
        "2",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.1"},
    )
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    (tmp_path / "inputs.json").write_text(json.dumps([str(p) for p in inputs]))
    journal = tmp_path / "client.journal.sqlite"
    result = tmp_path / "result.json"
    args = [srv.base_url, srv.api_key, str(journal), str(tmp_path / "inputs.json"), str(result)]

    endings = []
    for freeze in [*kills, "never:0"]:
        ended, lines = await run_child(script, args, freeze)
        endings.append(ended)
    assert endings == [f"killed at {k.split(':')[0]}" for k in kills] + ["exited"]
    resumed = sum(1 for line in lines if line.startswith("outcome") and line.endswith("True"))

    final = json.loads(result.read_text())
    assert set(final) == {str(p) for p in inputs}
    assert all(r["ok"] for r in final.values()), final
    ids = [r["task_id"] for r in final.values()]
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:
        tasks = await list_all(client)
        assert sorted(t.id for t in tasks) == sorted(ids)  # no duplicate, no orphan task
        assert len(set(ids)) == n
        for label, r in final.items():
            task = await client.embed.tasks.retrieve(r["task_id"])
            assert vectors_of(task) == reference[label], label
    j = Journal(journal)
    try:
        assert await j.counts() == {"ready": n}
    finally:
        await j.close()
    report(
        f"client-kill-{n}",
        crashes_survived=len(kills),
        kill_phases=[k.split(":")[0] for k in kills],
        videos=n,
        tasks=len(tasks),
        lost=n - len({t.id for t in tasks} & set(ids)),
        duplicates=len(tasks) - n,
        resumed_in_last_run=resumed,
    )


# -- worker crash ------------------------------------------------------------------------------


async def test_workers_killed_mid_task_fail_those_tasks_clearly_and_serving_goes_on(
    server_process: Any, live_server_factory: Any, base_video: Path, tmp_path: Path
) -> None:
    """Two video workers SIGKILLed while embedding (and the probe worker while idle):
    exactly those two tasks end ``failed`` with ``worker_crashed`` naming the signal, every
    other input is embedded as in a clean run, and the server never stops answering."""
    inputs = distinct_videos(base_video, tmp_path / "in", 6)
    reference = await clean_vectors(live_server_factory, inputs)
    srv = server_process(
        tmp_path / "worker-crash-data",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        "--admin-key",
        ADMIN_KEY,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.3"},
    )
    killed: dict[str, int] = {}
    http = aiohttp.ClientSession(headers={"x-api-key": ADMIN_KEY})  # worker PIDs: operators only

    async def metrics() -> Any:
        async with http.get(srv.url("metrics")) as resp:
            assert resp.status == 200
            return await resp.json()

    # The probe worker killed while idle: the next create gets a fresh one.
    first = await metrics()
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        warm = await c.embed.tasks.create(video_file=inputs[0], video_clip_length=2)
        await c.embed.tasks.wait(warm.id, sleep_interval=0.05)
    sync_pids = (await metrics())["probe_workers"]["pids"]
    assert len(sync_pids) == 1 and first["probe_workers"]["crashes"] == 0
    os.kill(sync_pids[0], signal.SIGKILL)

    async def on_status(update: Any) -> None:
        p = update.task.progress if update.task is not None else None
        mid_task = p is not None and 0 < p.clips_done < p.clips_total
        if mid_task and len(killed) < 2 and update.task_id not in killed:
            [pid] = (await metrics())["workers"]["pids"]  # one worker: it runs this task
            os.kill(pid, signal.SIGKILL)
            killed[update.task_id] = pid

    journal = tmp_path / "worker.journal.sqlite"
    try:
        async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:
            batch = client.embed.tasks.embed_many(
                inputs[1:],
                concurrency=4,
                video_clip_length=2,
                journal=journal,
                sleep_interval=0.05,
                on_status=on_status,
            )
            async with batch as stream:
                outcomes = [o async for o in stream]
        after = await metrics()
    finally:
        await http.close()

    assert len(killed) == 2 and len(set(killed.values())) == 2
    failed = {o.task_id: o for o in outcomes if not o.ok}
    assert set(failed) == set(killed)
    for o in failed.values():
        assert isinstance(o.error, TaskFailedError)
        assert o.error.error.code == "worker_crashed"
        assert "SIGKILL" in o.error.error.message
    for o in outcomes:
        if o.ok:
            assert o.task is not None and vectors_of(o.task) == reference[o.item.label]
    assert len(outcomes) == 5 and sum(o.ok for o in outcomes) == 3
    assert after["workers"]["crashes"] == 2
    assert after["probe_workers"]["starts"] == 2 and sync_pids != after["probe_workers"]["pids"]
    assert not set(after["workers"]["pids"]) & set(killed.values())
    j = Journal(journal)
    try:
        assert await j.counts() == {"ready": 3, "failed": 2}
    finally:
        await j.close()

    # A crash says nothing about the video: a rerun with the journal submits those two again.
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:
        batch = client.embed.tasks.embed_many(
            inputs[1:], video_clip_length=2, journal=journal, sleep_interval=0.05
        )
        async with batch as stream:
            rerun = [o async for o in stream]
    assert all(o.ok for o in rerun), [o.error for o in rerun if not o.ok]
    assert sum(o.resumed for o in rerun) == 3 and not {o.task_id for o in rerun} & set(killed)
    for o in rerun:
        assert o.task is not None and vectors_of(o.task) == reference[o.item.label]


# -- disk full, unwritable data dir ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A tiny tmpfs (needs root, as in CI containers); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def remount(mount: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)


def fill(path: Path) -> Path:
    """Write ``path`` until the file system is full."""
    with path.open("wb") as f:
        chunk = b"\1" * 65536
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC
    return path


async def post_video(http: aiohttp.ClientSession, srv: Any, video: Path, **fields: str) -> Any:
    data = aiohttp.FormData()
    data.add_field("model_name", "Marengo-retrieval-2.7")
    for k, v in fields.items():
        data.add_field(k, v)
    data.add_field("video_file", io.BytesIO(video.read_bytes()), filename=video.name)
    async with http.post(srv.url("embed/tasks"), data=data, headers=srv.headers) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


async def test_disk_full_is_a_clean_500_and_the_store_survives(
    server_process: Any,
    live_server_factory: Any,
    video_factory: Any,
    small_disk: Path,
    tmp_path: Path,
    wait_until: Wait,
) -> None:
    short = video_factory(duration=4, fps=5, seed=72)
    long = video_factory(duration=20, fps=5, seed=73)
    reference = await clean_vectors(live_server_factory, [short, long])
    data = small_disk / "data"
    srv = server_process(
        data,
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        "--admin-key",
        ADMIN_KEY,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.2"},
    )
    http = aiohttp.ClientSession()
    client = AsyncClient(srv.api_key, base_url=srv.base_url, retry=RetryPolicy(attempts=2))
    try:
        a = await client.embed.tasks.create(video_file=short, video_clip_length=2)
        done_a = await client.embed.tasks.wait(a.id, sleep_interval=0.05)
        assert vectors_of(await a.retrieve()) == reference[str(short)]

        # An upload bigger than the free space: 500 internal_error, nothing left behind.
        big = padded(short, tmp_path / "big.mp4", 12 * 1024 * 1024)
        status, body = await post_video(http, srv, big)
        assert status == 500 and body["code"] == "internal_error", body
        assert "disk space" in body["message"]
        assert list((data / "uploads").iterdir()) == []

        # A task mid-embedding when the disk fills up: it cannot be recorded, so it stays
        # processing (never half-written) and is retried; creates get a clean 500.
        b = await client.embed.tasks.create(video_file=long, video_clip_length=2)

        async def embedding() -> bool:
            p = (await b.status()).progress
            return p is not None and p.clips_done >= 1

        await wait_until(embedding, timeout=30)
        ballast = fill(small_disk / "ballast")

        async def deferred() -> bool:
            admin = {"x-api-key": ADMIN_KEY}  # the queue is the operator's view
            async with http.get(srv.url("metrics"), headers=admin) as resp:
                return bool((await resp.json())["dispatcher"]["retrying"])

        await wait_until(deferred, timeout=30)
        status, body = await post_video(http, srv, short)
        assert status == 500 and body == {**body, "code": "internal_error"}, body
        assert (await b.status()).status is TaskStatus.PROCESSING
        assert vectors_of(await a.retrieve()) == reference[str(short)]  # reads still work

        # Space again: the deferred task completes by itself, as a clean run would have.
        ballast.unlink()
        done_b = await client.embed.tasks.wait(b.id, sleep_interval=0.1, timeout=60)
        assert done_b.status is TaskStatus.READY
        assert vectors_of(await b.retrieve()) == reference[str(long)]
        assert [t.id for t in await list_all(client)] == [b.id, a.id]
        assert done_a.status is TaskStatus.READY
    finally:
        await client.aclose()
        await http.close()
    assert srv.stop() == 0

    db = sqlite3.connect(data / "aioembed.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = db.execute("SELECT id, status FROM tasks ORDER BY seq").fetchall()
        assert rows == [(a.id, "ready"), (b.id, "ready")]
    finally:
        db.close()
    assert list((data / "uploads").iterdir()) == [] and list((data / "media").iterdir()) == []

    # Start-up on a full disk, then on a read-only one: a clear error and a non-zero exit.
    ballast = fill(small_disk / "ballast")
    with pytest.raises(RuntimeError, match="exited with 1") as info:
        srv.start()
    assert "not usable" in str(info.value) and "No space left" in str(info.value)
    ballast.unlink()
    await asyncio.to_thread(remount, small_disk, "ro")
    with pytest.raises(RuntimeError, match="exited with 1") as info:
        srv.start()
    assert "not usable" in str(info.value) and "Read-only file system" in str(info.value)
    await asyncio.to_thread(remount, small_disk, "rw")
    srv.start()
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        assert vectors_of(await c.embed.tasks.retrieve(b.id)) == reference[str(long)]


# -- a stalled server ----------------------------------------------------------------------------


@contextlib.contextmanager
def stopped(srv: Any) -> Any:
    """SIGSTOP the server process: it keeps its socket (the kernel still accepts
    connections) but answers nothing, a real stall, until SIGCONT."""
    os.kill(srv.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(srv.pid, signal.SIGCONT)


async def elapsed(aw: Awaitable[Any]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await aw
    except AioEmbedError as e:
        return time.monotonic() - started, e
    return time.monotonic() - started, None


async def test_stalled_server_timeouts_deadlines_and_cancellation(
    server_process: Any, video_factory: Any, tmp_path: Path
) -> None:
    srv = server_process(tmp_path / "stall-data")
    video = video_factory(duration=4, fps=5, seed=74)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        done = await c.embed.tasks.create(video_file=video)
        await c.embed.tasks.wait(done.id, sleep_interval=0.05)

    read_timeout = Timeouts(connect=2, read=0.4, request=10)
    three_tries = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.01, budget=30)
    patient = Timeouts(connect=30, read=30, request=60)  # deadlines, not timeouts, must end waits
    with stopped(srv):
        # The read timeout fires on each attempt; the policy's attempts bound the retries.
        async with AsyncClient(
            srv.api_key, base_url=srv.base_url, timeouts=read_timeout, retry=three_tries
        ) as c:
            with retry_log() as retries:
                took, err = await elapsed(c.embed.tasks.status(done.id))
            assert isinstance(err, RequestTimeoutError), err
            assert 3 * 0.4 <= took < 3 * 0.4 + 1.5, took
            assert [kind for _, kind in retries.errors] == ["RequestTimeoutError"] * 2

        async with AsyncClient(srv.api_key, base_url=srv.base_url, timeouts=patient) as c:
            # wait_for_done / wait: the deadline holds while a poll hangs.
            took, err = await elapsed(c.embed.tasks.wait(done.id, timeout=1.0))
            assert isinstance(err, WaitTimeoutError) and 1.0 <= took < 2.5, (took, err)

            # watch_many: every task gets its final (timeout) update near its deadline.
            async def watch() -> list[Any]:
                async with c.embed.tasks.watch_many(
                    [done.id, "f" * 24], task_timeout=1.0, sleep_interval=0.05
                ) as updates:
                    return [u async for u in updates if u.final]

            started = time.monotonic()
            finals = await watch()
            took = time.monotonic() - started
            assert {u.task_id for u in finals} == {done.id, "f" * 24}
            assert all(isinstance(u.error, WaitTimeoutError) for u in finals), finals
            assert took < 3.0, took

            # embed_many: the batch timeout bounds the batch, creates included.
            async def batch() -> list[Outcome]:
                async with c.embed.tasks.embed_many(
                    [video, tmp_path / "missing.mp4"], timeout=1.5, sleep_interval=0.05
                ) as outcomes:
                    return [o async for o in outcomes]

            started = time.monotonic()
            outcomes = await batch()
            took = time.monotonic() - started
            assert len(outcomes) == 2 and not any(o.ok for o in outcomes)
            errors = {type(o.error).__name__ for o in outcomes}
            assert errors == {"RequestTimeoutError", "ParameterError"}, outcomes
            assert took < 4.0, took

            # Cancelling a stalled wait or batch returns at once and leaves nothing running.
            for work in (c.embed.tasks.wait(done.id), batch()):
                runner = asyncio.ensure_future(work)
                await asyncio.sleep(0.3)  # let it get stuck in a request
                assert not runner.done()
                started = time.monotonic()
                runner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await runner
                assert time.monotonic() - started < 0.5
                assert client_tasks() == []

    # Back from the stall: the same client carries on.
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        assert (await c.embed.tasks.status(done.id)).status is TaskStatus.READY
