"""``embed_many(..., api="v2")`` against the real server over loopback: outcomes, dedupe,
journal and resume as for v1, checks before any request, waits through a restart."""

from __future__ import annotations

import asyncio
import math
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioembed import (
    AssetFailedError,
    AsyncClient,
    BatchItem,
    JournalError,
    Outcome,
    ParameterError,
    RateBudget,
    RetryPolicy,
    TaskStatus,
)
from aioembed.client._duration import media_seconds
from aioembed.server import RateLimit
from aioembed.client import Journal
from aioembed.server.testing import SLOW_BACKEND, WORKER_INIT
from aioembed.v2 import AudioInput, Dynamic, Fixed, MediaSource, V2Task, VideoInput

TASKS = "/v1.3/embed-v2/tasks"
TASK = "/v1.3/embed-v2/tasks/{task_id}"
ASSETS = "/v1.3/assets"


async def collect(client: AsyncClient, inputs: Any, **kw: Any) -> list[Outcome[V2Task]]:
    kw.setdefault("sleep_interval", 0.1)
    async with client.embed.tasks.embed_many(inputs, api="v2", **kw) as outcomes:
        return [o async for o in outcomes]


async def test_v2_batch_one_outcome_each_with_vectors(
    client: AsyncClient, live_server: Any, videos: Any
) -> None:
    paths = videos(8)
    outcomes = await collect(
        client,
        paths,
        segmentation=Fixed(2),
        embedding_option=["visual", "audio"],
        embedding_scope=["clip", "asset"],
        concurrency=4,
    )
    assert sorted(o.index for o in outcomes) == list(range(8))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert len({o.task_id for o in outcomes}) == 8
    for o in outcomes:
        assert isinstance(o.task, V2Task) and o.status is TaskStatus.READY
        assert o.task.matrix(option="visual", scope="clip").shape == (2, 512)
        assert o.task.matrix(option="audio", scope="asset").shape == (1, 512)
        assert o.task.matrix(option="visual").dtype == np.float32
    assert 8 <= live_server.counts(TASKS, "POST") <= 10
    # Each task retrieved once, when it left the shared processing list.
    assert live_server.counts(TASK, "GET") == 8
    polls = live_server.counts(TASKS, "GET")
    creates = live_server.counts(TASKS, "POST")
    print(f"v2 batch of 8: {creates} creates, 8 retrieves, {polls} list polls")
    assert len([t async for t in client.embed.v2.tasks.list(page_limit=50)]) == 8
    assert [t async for t in client.embed.tasks.list()] == []  # nothing went to v1


async def test_marengo35_dimension_and_v2_inputs(
    client: AsyncClient, videos: Any, video_factory: Any
) -> None:
    [video] = videos(1)
    audio = video_factory.audio(duration=6, seed=62)
    items = [video, AudioInput(MediaSource.file(audio), segmentation=Fixed(3))]
    outcomes = await collect(
        client,
        items,
        model_name="marengo3.5",
        segmentation=Dynamic(2),
        embedding_dimension=64,
        ordered=True,
    )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    first, second = (o.task for o in outcomes)
    assert first is not None and second is not None
    assert first.matrix(option="visual").shape[1] == 64
    assert second.metadata is not None and second.metadata.input_type == "audio"
    assert second.matrix(option="audio", scope="clip").shape == (2, 64)
    assert outcomes[1].item.label == str(audio)


async def test_watch_many_takes_the_api_argument_too(
    client: AsyncClient, live_server: Any, videos: Any
) -> None:
    handles = [
        await client.embed.v2.tasks.create(VideoInput(MediaSource.file(p), **CLIPS))
        for p in videos(3)
    ]
    finals = {}
    async with client.embed.tasks.watch_many(
        [h.id for h in handles], api="v2", sleep_interval=0.1, timeout=120
    ) as updates:
        async for u in updates:
            if u.final:
                finals[u.task_id] = u
    assert set(finals) == {h.id for h in handles}
    for u in finals.values():
        assert u.error is None and isinstance(u.task, V2Task)
        assert u.task.matrix(option="visual", scope="clip").shape == (1, 512)  # 4 s < 7 s
    assert live_server.counts(TASK, "GET") == 3  # one retrieve each; the rest list polls


async def test_settings_checked_before_any_request(
    client: AsyncClient, live_server: Any, videos: Any
) -> None:
    paths = videos(2)
    with pytest.raises(ParameterError) as bad:
        client.embed.tasks.embed_many(paths, api="v2", segmentation=Fixed(11))
    assert bad.value.parameter == "video.segmentation.fixed.duration_sec"
    with pytest.raises(ParameterError) as dim:
        client.embed.tasks.embed_many(paths, api="v2", embedding_dimension=256)
    assert dim.value.parameter == "embedding_dimension"  # marengo3.0 has no dimension choice
    with pytest.raises(ValueError, match="video_clip_length"):
        client.embed.tasks.embed_many(paths, api="v2", video_clip_length=6)
    with pytest.raises(ValueError, match="segmentation"):
        client.embed.tasks.embed_many(paths, segmentation=Fixed(6))
    with pytest.raises(ValueError, match="api"):
        client.embed.tasks.embed_many(paths, api="v3")  # type: ignore[call-overload]
    # A per-item v1 parameter fails that item alone, before it is sent.
    outcomes = await collect(
        client, [paths[0], BatchItem(video_file=paths[1], video_clip_length=4)], ordered=True
    )
    assert outcomes[0].ok and isinstance(outcomes[1].error, ParameterError)
    assert live_server.counts(TASKS, "POST") == 1


async def test_dedupe_journal_and_resume(
    client: AsyncClient, live_server: Any, videos: Any, tmp_path: Path
) -> None:
    paths = videos(10)
    twin = shutil.copyfile(paths[0], tmp_path / "twin.mp4")
    inputs = [*paths, twin]
    journal = tmp_path / "v2.sqlite"
    first: list[Outcome[V2Task]] = []
    async with client.embed.tasks.embed_many(
        inputs, api="v2", concurrency=5, journal=journal, sleep_interval=0.1
    ) as outcomes:
        async for o in outcomes:
            first.append(o)
            if len(first) == 2:
                break  # leaving the block cancels everything in flight
    second = await collect(client, inputs, concurrency=5, journal=journal)
    assert sorted(o.index for o in second) == list(range(11))
    assert all(o.ok for o in second), [o.error for o in second]
    assert sum(o.resumed for o in second) >= 2
    by_name = {Path(o.item.label).name: o for o in second}
    assert by_name["twin.mp4"].task_id == by_name[paths[0].name].task_id
    tasks = [t async for t in client.embed.v2.tasks.list(page_limit=50)]
    assert len(tasks) == 10  # no duplicate, whatever was in flight at the interruption
    posts = live_server.counts(TASKS, "POST")
    third = await collect(client, inputs, journal=journal)
    assert all(o.resumed and o.ok for o in third)
    assert live_server.counts(TASKS, "POST") == posts
    entry = await _entry(journal, third[0].item.label, third[0])
    assert entry is not None and entry.api == "v2"


async def _entry(path: Path, label: str, outcome: Outcome[V2Task]) -> Any:
    j = Journal(path)
    try:
        rows = await j._call("SELECT key FROM items WHERE input = ?", label)
        return await j.get(rows[0][0])
    finally:
        await j.close()


async def test_a_v1_journal_is_never_resumed_as_v2(
    client: AsyncClient, live_server: Any, videos: Any, tmp_path: Path
) -> None:
    [a, b] = videos(2)
    journal = tmp_path / "mixed.sqlite"
    items = [BatchItem(video_file=a, key="clip-a"), BatchItem(video_file=b, key="clip-b")]
    async with client.embed.tasks.embed_many(items, journal=journal, sleep_interval=0.1) as s:
        assert all([o.ok async for o in s])
    outcomes = await collect(client, items, journal=journal)
    assert all(isinstance(o.error, JournalError) for o in outcomes)
    assert "v1 task" in str(outcomes[0].error)
    assert live_server.counts(TASKS, "POST") == 0


async def test_a_version_1_journal_is_upgraded(tmp_path: Path) -> None:
    """Journals written before the API was recorded resume as v1 entries."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE aioembed_journal (magic TEXT NOT NULL, version INTEGER NOT NULL);
        INSERT INTO aioembed_journal VALUES ('aioembed-journal', 1);
        CREATE TABLE items (key TEXT PRIMARY KEY, input TEXT NOT NULL, content_hash TEXT,
            idempotency_key TEXT NOT NULL, task_id TEXT, status TEXT NOT NULL DEFAULT 'pending',
            error_code TEXT, error_message TEXT, updated_at TEXT NOT NULL DEFAULT 'x');
        INSERT INTO items (key, input, idempotency_key, task_id, status)
            VALUES ('k', 'a.mp4', 'idem', 'abc', 'ready');
        """
    )
    db.close()
    j = Journal(path)
    entry = await j.get("k")
    assert entry is not None and (entry.api, entry.task_id, entry.asset_id) == ("v1", "abc", None)
    await j.set_asset("k", "f" * 24)
    assert (await j.begin("k", "a.mp4", None, api="v2")).asset_id == "f" * 24
    assert (await j._call("SELECT version FROM aioembed_journal")) == [(2,)]
    await j.close()


async def test_v2_batch_rides_through_a_server_restart(
    server_process: Any, videos: Any, tmp_path: Path
) -> None:
    """kill -9 mid-watch and a restart on the same data dir: the shared poller meets
    refused connections, keeps waiting, and every item ends ``ready``."""
    srv = server_process(
        tmp_path / "restart-data",
        "--backend",
        SLOW_BACKEND,
        "--worker-init",
        WORKER_INIT,
        env={"AIOEMBED_TEST_CLIP_DELAY": "0.3"},
    )
    paths = videos(3)
    seen = asyncio.Event()
    outcomes: list[Outcome[V2Task]] = []

    watched: set[str] = set()

    def note(update: Any) -> None:
        watched.add(update.task_id)
        if len(watched) == len(paths):  # every create answered: the outage hits waits only
            seen.set()

    async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:

        async def restart() -> None:
            await asyncio.wait_for(seen.wait(), 60)
            await asyncio.to_thread(srv.kill)
            await asyncio.sleep(1.0)  # polls meet refused connections meanwhile
            await asyncio.to_thread(srv.start)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(restart())
            async with client.embed.tasks.embed_many(
                paths,
                api="v2",
                segmentation=Fixed(2),
                embedding_option=["visual"],
                sleep_interval=0.2,
                on_status=note,
                timeout=240,
            ) as stream:
                outcomes = [o async for o in stream]
    assert srv.starts == 2
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    # The restarted process answered the watch: list polls and the retrieves of the tasks.
    after = srv.counts()
    assert after.get((TASKS, "GET", 200), 0) >= 1 and after.get((TASK, "GET", 200), 0) >= 1
    shapes = [o.task.matrix(option="visual", scope="clip").shape for o in outcomes if o.task]
    assert shapes == [(2, 512)] * 3, shapes


def _big(video_factory: Any) -> Path:
    """A real 14 s video over the 36 MB inline limit (uncompressed pictures, made in ~1 s)."""
    path = video_factory(
        duration=14, fps=15, seed=63, codec="rawvideo", codec_options={}, suffix=".mkv"
    )
    assert path.stat().st_size > 36 * 1024 * 1024
    return Path(path)


CLIPS = {"segmentation": Fixed(7), "embedding_option": ["visual"], "embedding_scope": ["clip"]}


async def test_a_large_file_goes_up_as_an_asset(
    client: AsyncClient, live_server: Any, video_factory: Any, tmp_path: Path
) -> None:
    big = _big(video_factory)
    task = await client.embed.v2.tasks.create(VideoInput(MediaSource.file(big), **CLIPS))
    assert task.uploaded_asset_id is not None
    done = await task.wait(sleep_interval=0.2, timeout=180)
    assert done.matrix(option="visual", scope="clip").shape == (2, 512)
    asset = await client.assets.retrieve(task.uploaded_asset_id)
    assert asset.status == "ready" and asset.size == big.stat().st_size
    assert live_server.counts(ASSETS, "POST") == 1
    # A file the server cannot read fails as an asset, before any task is made.
    junk = tmp_path / "junk.mp4"
    with junk.open("wb") as f:
        f.truncate(36 * 1024 * 1024 + 1)
    with pytest.raises(AssetFailedError) as info:
        await client.embed.v2.tasks.create(VideoInput(MediaSource.file(junk)))
    assert info.value.message
    assert live_server.counts(TASKS, "POST") == 1


async def test_a_batch_uploads_once_resumes_with_the_asset_and_cleans_up(
    client: AsyncClient, live_server: Any, video_factory: Any, videos: Any, tmp_path: Path
) -> None:
    big = _big(video_factory)
    [small] = videos(1)
    journal = tmp_path / "assets.sqlite"
    items = [BatchItem(video_file=big, key="big"), small]
    uploads: list[int] = []

    def note(item: BatchItem, sent: int, total: int | None) -> None:
        if item.key == "big" and sent == total:
            uploads.append(sent)

    first = await collect(client, items, journal=journal, ordered=True, on_upload=note, **CLIPS)
    assert all(o.ok for o in first), [o.error for o in first]
    assert first[0].task is not None
    assert first[0].task.matrix(option="visual", scope="clip").shape == (2, 512)
    assert live_server.counts(ASSETS, "POST") == 1 and uploads
    j = Journal(journal)
    entry = await j.get("big")
    assert entry is not None and entry.asset_id is not None  # kept: delete_assets is off
    # The server lost the task (a transient failure): a rerun creates it again, on the
    # asset it already has, and with delete_assets leaves no asset behind.
    await j.set_status("big", "failed", "worker_crashed", "the worker died")
    await j.close()
    second = await collect(client, items, journal=journal, delete_assets=True, **CLIPS)
    assert all(o.ok for o in second), [o.error for o in second]
    assert live_server.counts(ASSETS, "POST") == 1  # not uploaded again
    assert live_server.counts(TASKS, "POST") == 3
    assert [a async for a in client.assets.list()] == []
    j = Journal(journal)
    assert (await j.get("big")).asset_id is None  # type: ignore[union-attr]
    await j.close()


def test_header_durations(video_factory: Any) -> None:
    assert media_seconds(video_factory(duration=4, fps=5, seed=61)) == 4.0
    assert media_seconds(video_factory(duration=3, fps=5, seed=64, suffix=".mov")) == 3.0
    assert media_seconds(video_factory.audio(duration=3.3, seed=65, suffix=".wav")) == 3.3
    assert media_seconds(video_factory(duration=2, fps=5, seed=66, suffix=".mkv")) is None
    assert media_seconds(video_factory.file("junk.mp4", b"\0\0\0\x10ftypjunk" * 3)) is None


async def test_budget_paces_requests_and_media_minutes(
    live_server_factory: Any, videos: Any
) -> None:
    """A server limited to 120 requests/min (a burst of 4) and a budget of 120 media
    minutes/hour (8 s at once): the batch sees no 429 (one would fail its item: no
    retries) and, counted server-side, stays within both budgets."""
    await _paced_batch(live_server_factory, videos(6), "v2", rate=2.0, burst=4, media=8.0)


@pytest.mark.slow
@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_budget_paces_a_larger_batch(
    live_server_factory: Any, videos: Any, api: str
) -> None:
    """30 videos, 60 requests/min (a burst of 10), 120 media minutes/hour (20 s at once)."""
    await _paced_batch(live_server_factory, videos(30), api, rate=1.0, burst=10, media=20.0)


async def _server_durations(server: Any, api: str) -> list[tuple[float, float]]:
    """``(created_at, duration)`` of every task, oldest first, from the server's list."""
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        if api == "v2":
            found = [
                (t.created_at, t.video_embedding.metadata["duration"])  # type: ignore[union-attr]
                async for t in client.embed.v2.tasks.list(page_limit=50)
            ]
        else:
            found = [
                (t.created_at, t.metadata.duration)  # type: ignore[union-attr]
                async for t in client.embed.tasks.list(page_limit=50)
            ]
    return sorted((at.timestamp(), float(d)) for at, d in found)  # type: ignore[union-attr]


async def _paced_batch(
    factory: Any, paths: list[Path], api: str, *, rate: float, burst: int, media: float
) -> None:
    """``paths`` (4 s videos) through a server limited to ``rate`` requests/s with a burst
    of ``burst``, under that budget plus ``2 * rate`` media-seconds per second with a
    burst of ``media`` s; both budgets are checked from the server's own records."""
    server = await factory(rate_limit=RateLimit(burst, burst / rate))
    budget = RateBudget(
        requests_per_minute=60 * rate,
        request_burst=burst,
        media_minutes_per_hour=120 * rate,  # 2 * rate media-seconds per second
        media_burst_minutes=media / 60,
    )
    strict = RetryPolicy(attempts=1)  # a 429 would fail its item
    kw: dict[str, Any] = {**CLIPS, "api": "v2"} if api == "v2" else {"video_clip_length": 4}
    async with AsyncClient(server.api_key, base_url=server.base_url, retry=strict) as client:
        started, wall = time.monotonic(), math.floor(time.time())
        async with client.embed.tasks.embed_many(
            paths, budget=budget, sleep_interval=0.3, **kw
        ) as stream:
            outcomes = [o async for o in stream]
        elapsed = time.monotonic() - started
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert server.counts(status=429) == 0
    sent = server.counts()
    assert sent <= burst + rate * elapsed, (sent, elapsed)
    times = await _server_durations(server, api)
    assert len(times) == len(paths) and all(d == 4.0 for _, d in times)
    # created_at (whole seconds) comes at or after a create's arrival (the server probes
    # first), so what was created by then arrived by then: it must fit the budget since
    # the batch started.
    total = 0.0
    for at, duration in times:
        total += duration
        assert total <= media + 2 * rate * (at - wall + 1.0), (wall, times)
    assert elapsed >= (total - media) / (2 * rate)  # paced, not sent at once
    print(
        f"paced {api} batch of {len(paths)}: {sent} requests in {elapsed:.1f} s "
        f"(budget {burst} + {rate:g}/s), {total:g} media-s "
        f"(budget {media:g} + {2 * rate:g}/s), 0 429s"
    )
