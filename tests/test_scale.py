"""Operator mode as processes: PostgreSQL + S3 (moto) + `serve` replicas + `worker` processes.

Replicas share nothing but the database and the bucket; workers claim tasks from
the PostgreSQL queue and read media from the bucket. Both SDKs (ours and the
official ``twelvelabs``) alternate replicas; a worker is killed with SIGKILL
mid-task and its task runs again elsewhere, completed exactly once; a shared
rate limit (requests, and the media budget) answers the same whichever replica is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import httpx
import pytest
from conftest import API_KEY, S3_TEST_ENV, ServerProcess

from aioembed import AsyncClient
from aioembed.server._store import new_task_id
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT

pytest.importorskip("asyncpg", reason="asyncpg (the `scale` extra) is missing")
pytest.importorskip("aiobotocore", reason="aiobotocore (the `scale` extra) is missing")
import asyncpg  # noqa: E402

MODEL = "Marengo-retrieval-2.7"
#: Short enough that a killed worker's task runs again within seconds.
LEASE = "3"


@attrs.define
class Deployment:
    """One operator-mode deployment's shared backends: a database and a bucket."""

    dsn: str
    bucket: str
    s3: str
    env: dict[str, str]

    @property
    def media(self) -> str:
        return f"s3://{self.bucket}/deploy"

    async def fetchval(self, sql: str, *args: object) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def objects(self) -> int:
        from aiobotocore.session import get_session

        async with get_session().create_client("s3", endpoint_url=self.s3) as s3:
            page = await s3.list_objects_v2(Bucket=self.bucket)
            return int(page.get("KeyCount", 0))


@pytest.fixture
async def deployment(
    postgres_dsn: str, s3_endpoint: str, s3_env: dict[str, str]
) -> AsyncIterator[Deployment]:
    """A fresh database (on the session's PostgreSQL) and a fresh bucket."""
    from aiobotocore.session import get_session

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
    env = {
        **S3_TEST_ENV,
        "AIOEMBED_DATABASE_URL": dsn,  # never on argv: `ps` shows argv to every user
        "AIOEMBED_TEST_CLIP_DELAY": "0.4",
    }
    yield Deployment(dsn, bucket, s3_endpoint, env)


class WorkerProcess:
    """``aioembed worker`` in its own session; ``kill()`` is SIGKILL of the worker only
    (its engine processes notice their parent died and exit by themselves)."""

    def __init__(self, d: Deployment, log: Path, *args: str) -> None:
        self.log = log
        cmd = [
            sys.executable, "-m", "aioembed", "worker",
            "--media", d.media, "--s3-endpoint", d.s3,
            "--backend", SLOW_BACKEND, "--worker-init", WORKER_INIT,
            "--task-lease", LEASE, *args,
        ]  # fmt: skip
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
                env={**os.environ, **d.env},
            )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            with self.proc.stdout:
                for line in self.proc.stdout:
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 60
        while (line := lines.get(timeout=max(0.1, deadline - time.monotonic()))) is not None:
            if line.startswith("aioembed worker ready"):
                return
        raise RuntimeError(f"worker exited with {self.proc.wait()}:\n{log.read_text()[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[Any]]:
    """Everything a test started, killed (whole process groups) at the end."""
    started: list[Any] = []
    yield started
    for proc in started:
        proc.kill_group()


def replica(d: Deployment, tmp_path: Path, name: str, *args: str) -> ServerProcess:
    log_dir = tmp_path / f"logs-{name}"
    log_dir.mkdir()
    server = ServerProcess(
        tmp_path / f"data-{name}",
        args=["--media", d.media, "--s3-endpoint", d.s3, *args],
        api_key=API_KEY,
        log_dir=log_dir,
        env=d.env,
    )
    server.start(timeout=60)
    return server


async def _create(replica: ServerProcess, video: Path, *, official: bool) -> str:
    if official:
        from twelvelabs import AsyncTwelveLabs

        async with httpx.AsyncClient(timeout=60) as http:
            sdk = AsyncTwelveLabs(api_key=API_KEY, base_url=replica.base_url, httpx_client=http)
            with video.open("rb") as f:
                created = await sdk.embed.tasks.create(
                    model_name=MODEL, video_file=f, video_clip_length=2
                )
            return str(created.id)
    async with AsyncClient(API_KEY, base_url=replica.base_url) as client:
        handle = await client.embed.tasks.create(MODEL, video_file=video, video_clip_length=2)
        return handle.id


async def _ready(replica: ServerProcess, task_id: str, *, official: bool) -> int:
    """Wait for ``task_id`` through ``replica``; returns its number of segments."""
    if official:
        from twelvelabs import AsyncTwelveLabs

        async with httpx.AsyncClient(timeout=60) as http:
            sdk = AsyncTwelveLabs(api_key=API_KEY, base_url=replica.base_url, httpx_client=http)
            done = await sdk.embed.tasks.wait_for_done(task_id, sleep_interval=0.5)
            assert done.status == "ready", done
            got = await sdk.embed.tasks.retrieve(task_id)
            assert got.video_embedding is not None and got.video_embedding.segments
            return len(got.video_embedding.segments)
    async with AsyncClient(API_KEY, base_url=replica.base_url) as client:
        task = await client.embed.tasks.wait(task_id, sleep_interval=0.5, timeout=120)
        assert task.status == "ready", task
        got = await client.embed.tasks.retrieve(task_id)
        return len(got.segments)


async def test_replicas_and_workers_survive_a_killed_worker(
    deployment: Deployment, processes: list[Any], tmp_path: Path, video_factory: Any
) -> None:
    d = deployment
    replicas = [replica(d, tmp_path, n, "--rate-limit", "30/s") for n in ("a", "b")]
    processes += replicas
    workers = [WorkerProcess(d, tmp_path / f"worker-{i}.log", "--workers", "1") for i in (1, 2)]
    processes += workers
    video = video_factory(duration=8.0, name="scale.mp4")  # 4 clips of 2 s, ~1.6 s each task
    # The database drops every connection (a restart, a failover): replicas and workers
    # reconnect (the workers' listeners too) and go on.
    dropped = await d.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert dropped >= 4

    # Our SDK through replica a, the official one through b, alternating.
    ids = [
        await _create(replicas[i % 2], video, official=bool(i % 2)) for i in range(4)
    ]
    # Kill worker 1 once work is under way (both workers are busy: 4 tasks, 2 workers).
    async def started() -> bool:
        n = await d.fetchval(
            "SELECT count(*) FROM aioembed.tasks WHERE clips_done > 0 OR status = 'ready'"
        )
        return bool(n)

    deadline = time.monotonic() + 60
    while not await started():
        assert time.monotonic() < deadline, "no task started"
        await asyncio.sleep(0.1)
    workers[0].kill()

    # Each task read back through the *other* replica, with the other SDK.
    counts = await asyncio.wait_for(
        asyncio.gather(
            *(_ready(replicas[(i + 1) % 2], t, official=not i % 2) for i, t in enumerate(ids))
        ),
        timeout=120,
    )
    assert len(set(counts)) == 1 and counts[0] >= 4
    # The kill interrupted a task: it was attempted again by the surviving worker.
    assert await d.fetchval("SELECT max(attempts) FROM aioembed.tasks") >= 2
    # Exactly once: every task ready, one row per segment, nothing left queued or leased.
    assert await d.fetchval("SELECT count(*) FROM aioembed.tasks WHERE status = 'ready'") == 4
    rows = await d.fetchval("SELECT count(*) FROM aioembed.segments")
    assert rows == 4 * counts[0]
    assert await d.fetchval("SELECT count(*) FROM aioembed.queue") == 0
    assert await d.objects() == 0  # every task's media dropped from the bucket
    # The database URL never reached a log (it came by environment, never argv).
    for log in [*tmp_path.glob("logs-*/*.log"), *tmp_path.glob("worker-*.log")]:
        assert d.dsn not in log.read_text()


async def test_rate_limit_is_shared_by_replicas(
    deployment: Deployment, processes: list[Any], tmp_path: Path
) -> None:
    d = deployment
    replicas = [replica(d, tmp_path, n, "--rate-limit", "20/min") for n in ("a", "b")]
    processes += replicas
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as http:

        async def ask(i: int) -> tuple[int, int]:
            async with http.get(replicas[i % 2].url("embed/tasks")) as resp:
                return resp.status, int(resp.headers["X-Ratelimit-Remaining"])

        answers = [await ask(i) for i in range(26)]
    statuses = [s for s, _ in answers]
    # One bucket of 20 for both replicas (a bucket each would have allowed all 26),
    # refilled by one token per 3 s at most while the 26 requests ran.
    assert 20 <= statuses.count(200) <= 21, statuses
    assert statuses[:20] == [200] * 20 and statuses[-4:] == [429] * 4
    # Remaining counts down across replicas as one sequence.
    remaining = [r for _, r in answers[:20]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] <= 1


async def test_media_budget_is_shared_by_replicas(
    deployment: Deployment, processes: list[Any], tmp_path: Path, video_factory: Any
) -> None:
    """``--media-rate-limit 1/h`` (60 s of media) on two replicas: three 20 s videos
    created alternately use it up, and the fourth is refused on either replica."""
    d = deployment
    replicas = [replica(d, tmp_path, n, "--media-rate-limit", "1/h") for n in ("a", "b")]
    processes += replicas
    video = video_factory(duration=20, fps=5, seed=71)
    remaining = []
    async with aiohttp.ClientSession(headers={"x-api-key": API_KEY}) as http:

        async def create(i: int) -> int:
            form = aiohttp.FormData()
            form.add_field("model_name", MODEL)
            form.add_field("video_file", video.read_bytes(), filename=video.name)
            async with http.post(replicas[i % 2].url("embed/tasks"), data=form) as resp:
                remaining.append(int(resp.headers["X-Ratelimit-Duration-Remaining"]))
                return resp.status

        statuses = [await create(i) for i in range(4)]
    assert statuses == [200, 200, 200, 429], statuses
    assert remaining == [40, 20, 0, 0]


@pytest.mark.slow
async def test_a_worker_charges_a_url_input_to_the_shared_media_budget(
    deployment: Deployment,
    processes: list[Any],
    tmp_path: Path,
    video_factory: Any,
    static_server: Any,
) -> None:
    """A URL's duration is learnt by the ``aioembed worker`` that fetches it: it charges
    the key's bucket in PostgreSQL, and the replica reports what is left."""
    d = deployment
    flags = ("--media-rate-limit", "1/h", "--allow-url-host", "127.0.0.1")
    server = replica(d, tmp_path, "a", *flags)
    processes.append(server)
    processes.append(WorkerProcess(d, tmp_path / "worker-m.log", *flags))
    url = static_server.add(video_factory(duration=20, fps=5, seed=71), "twenty.mp4")
    async with AsyncClient(API_KEY, base_url=server.base_url) as client:
        handle = await client.embed.tasks.create(MODEL, video_url=url, video_clip_length=2)
        seen = client.rate_limits
        assert seen is not None and seen.duration is not None and seen.duration.remaining == 60
        task = await client.embed.tasks.wait(handle.id, sleep_interval=0.3, timeout=120)
        assert task.status == "ready"
        [_ async for _ in client.embed.tasks.list()]
        seen = client.rate_limits
    assert seen is not None and seen.duration is not None and seen.duration.remaining == 40


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_password_is_never_shown(
    postgres_dsn: str, s3_endpoint: str, tmp_path: Path, command: str
) -> None:
    from aioembed.server import ServerConfig

    secret = "hunter2-do-not-show"
    prefix, _, query = postgres_dsn.partition("?")
    host = prefix.split("@", 1)[-1].rsplit("/", 1)[0]
    dsn = f"postgresql://postgres:{secret}@{host}/no_such_db?{query}"
    config = ServerConfig(database=dsn, media="s3://bucket/p")
    assert secret not in repr(config)
    run = subprocess.run(
        [sys.executable, "-m", "aioembed", command, "--database", dsn, "--media", "s3://bucket/p",
         "--s3-endpoint", s3_endpoint, "--data-dir", str(tmp_path), "--api-key", "k"][
            : None if command == "serve" else -4
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **S3_TEST_ENV},
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "no_such_db" in run.stderr  # the error says what failed...
    assert secret not in run.stdout + run.stderr  # ...without the password


@pytest.mark.slow
async def test_heavy_three_workers_a_killed_worker_and_a_replica_killed_mid_upload(
    deployment: Deployment, processes: list[Any], tmp_path: Path, video_factory: Any
) -> None:
    d = deployment
    a, b = (replica(d, tmp_path, n, "--rate-limit", "30/s") for n in ("a", "b"))
    processes += [a, b]
    workers = [WorkerProcess(d, tmp_path / f"worker-{i}.log", "--workers", "1") for i in (1, 2, 3)]
    processes += workers
    video = video_factory(duration=8.0, name="heavy.mp4")
    data = video.read_bytes()
    ids = list(
        await asyncio.gather(
            *(_create((a, b)[i % 2], video, official=bool(i // 2 % 2)) for i in range(12))
        )
    )

    # An upload through replica a, cut by a's death after a few chunks...
    key = f"heavy-{new_task_id()}"
    sent = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 8192):
            if i >= 4 * 8192:
                sent.set()
            yield data[i : i + 8192]
            await asyncio.sleep(0.2)

    async with AsyncClient(API_KEY, base_url=a.base_url) as client:
        upload = asyncio.ensure_future(
            client.embed.tasks.create(
                MODEL, video_file=slowly(), video_clip_length=2, idempotency_key=key
            )
        )
        await asyncio.wait_for(sent.wait(), 30)
        a.kill()
        with pytest.raises(Exception):  # noqa: B017 - any transport error: a is gone
            await upload
    # ...made again through replica b under the same key: one task.
    async with AsyncClient(API_KEY, base_url=b.base_url) as client:
        handle = await client.embed.tasks.create(
            MODEL, video_file=video, video_clip_length=2, idempotency_key=key
        )
    ids.append(handle.id)
    assert await d.fetchval("SELECT count(*) FROM aioembed.idempotency WHERE key = $1", key) == 1

    while not await d.fetchval("SELECT count(*) FROM aioembed.tasks WHERE clips_done > 0"):
        await asyncio.sleep(0.1)
    workers[0].kill()
    counts = await asyncio.wait_for(
        asyncio.gather(*(_ready(b, t, official=bool(i % 2)) for i, t in enumerate(ids))),
        timeout=300,
    )
    assert len(set(counts)) == 1
    assert await d.fetchval("SELECT count(*) FROM aioembed.tasks") == 13
    assert await d.fetchval("SELECT count(*) FROM aioembed.tasks WHERE status = 'ready'") == 13
    assert await d.fetchval("SELECT count(*) FROM aioembed.segments") == 13 * counts[0]
    assert await d.fetchval("SELECT count(*) FROM aioembed.queue") == 0
    assert await d.objects() == 0


async def test_a_multipart_upload_outlives_its_replica_and_feeds_a_worker(
    deployment: Deployment, processes: list[Any], tmp_path: Path, video_factory: Any
) -> None:
    """The session and its part live in PostgreSQL and the bucket: replica a takes the
    part and dies, replica b completes the upload (its probe reads the part from the
    bucket), and a worker embeds a v2 task whose source is the asset."""
    d = deployment
    a, b = (replica(d, tmp_path, n) for n in ("a", "b"))
    processes += [a, b]
    # With the engine hosts' own limits (as `serve` takes them).
    worker = WorkerProcess(
        d, tmp_path / "worker.log", "--workers", "1", "--decoder-threads", "1",
        "--worker-memory-limit", "1500M",
    )  # fmt: skip
    processes.append(worker)
    video = video_factory(duration=4.0, name="parts.mp4")
    blob = video.read_bytes()  # one part: parts are 5 MiB at least
    headers = {"x-api-key": API_KEY}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        started = await http.post(
            a.url("assets/multipart-uploads"),
            json={"filename": "parts.mp4", "type": "video", "total_size": len(blob)},
        )
        assert started.status_code == 201, started.text
        session = started.json()
        url = session["upload_urls"][0]["url"]
        put = await http.put(url, content=blob, headers={"x-api-key": ""})
        assert put.status_code == 200, put.text
        a.kill()
        report = await http.post(
            b.url(f"assets/multipart-uploads/{session['upload_id']}"),
            json={
                "completed_chunks": [
                    {"chunk_index": 1, "proof": put.headers["ETag"], "proof_type": "etag",
                     "chunk_size": len(blob)}
                ]
            },
        )  # fmt: skip
        assert report.status_code == 200, report.text
        asset_id = session["asset_id"]
        deadline = time.monotonic() + 60
        while (asset := (await http.get(b.url(f"assets/{asset_id}"))).json())["status"] != "ready":
            assert asset["status"] == "processing" and time.monotonic() < deadline, asset
            await asyncio.sleep(0.2)
        created = await http.post(
            b.url("embed-v2/tasks"),
            json={
                "input_type": "video",
                "model_name": "marengo3.0",
                "video": {"media_source": {"asset_id": asset_id}, "embedding_option": ["visual"]},
            },
        )
        assert created.status_code in (200, 201), created.text
        task_id = created.json()["_id"]
        while (task := (await http.get(b.url(f"embed-v2/tasks/{task_id}"))).json())[
            "status"
        ] == "processing":
            assert time.monotonic() < deadline + 60, task
            await asyncio.sleep(0.2)
        assert task["status"] == "ready", task
        assert task["data"]
    assert await d.fetchval("SELECT count(*) FROM aioembed.assets WHERE status = 'ready'") == 1
