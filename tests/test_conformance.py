"""The seams' contracts, run against every implementation (fast: no server, no sleeps).

A new implementation (PostgreSQL store and queue, S3 media) joins by adding a
factory to the fixture's ``params``; it is then held to exactly these rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from pathlib import Path

import pytest

from aioembed.server._media import LocalMediaStore, MediaStore
from aioembed.server._queue import InProcessQueue, LeaseLost, TaskQueue
from aioembed.server._store import (
    NewTask,
    SegmentRecord,
    SqliteStore,
    Store,
    new_task_id,
)

# -- Store ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made: Store
    if request.param == "postgresql":
        from aioembed.server._pg_store import PostgresStore

        dsn: str = request.getfixturevalue("postgres_dsn")
        made = PostgresStore(dsn, schema=f"t_{new_task_id()}")  # a fresh schema per test
    else:
        made = SqliteStore(tmp_path / "s.sqlite3")
    await made.open()
    try:
        yield made
    finally:
        await made.close()


def _task(owner: str = "alice", **kw: object) -> NewTask:
    fields: dict[str, object] = {
        "id": new_task_id(),
        "owner": owner,
        "model_name": "marengo3.0",
        "clip_length": 6.0,
        "scopes": ("clip", "video"),
        "options": ("visual", "audio"),
    }
    fields.update(kw)
    return NewTask(**fields)  # type: ignore[arg-type]


def _segment(option: str, start: float) -> SegmentRecord:
    return SegmentRecord(start, start + 6.0, "clip", option, b"\0\0\x80?" * 2)


async def test_store_scopes_tasks_to_their_owner(store: Store) -> None:
    task = _task(input_url="https://example.com/v.mp4", end=12.5)
    assert await store.create_task(task) == task.id
    rec = await store.get_task(task.id, owner="alice")
    assert rec is not None and rec.status == "processing"
    assert (rec.scopes, rec.options, rec.end, rec.input_url) == (
        task.scopes,
        task.options,
        12.5,
        task.input_url,
    )
    assert await store.get_task(task.id, owner="bob") is None
    assert (await store.get_task(task.id)) == rec  # the dispatcher reads without an owner


async def test_store_idempotency_key_returns_the_original(store: Store) -> None:
    first, second = _task(), _task()
    assert await store.create_task(first, idempotency_key="k") == first.id
    assert await store.create_task(second, idempotency_key="k") == first.id
    assert await store.get_task(second.id) is None
    assert await store.find_idempotent("alice", "k", max_age=60) == first.id
    assert await store.find_idempotent("bob", "k", max_age=60) is None
    assert await store.create_task(_task("bob"), idempotency_key="k") != first.id


async def test_store_concurrent_creates_with_one_key_make_one_task(store: Store) -> None:
    tasks = [_task() for _ in range(6)]
    ids = await asyncio.gather(*(store.create_task(t, idempotency_key="same") for t in tasks))
    assert len(set(ids)) == 1
    assert (await store.list_tasks("alice"))[1] == 1


async def test_store_lists_newest_first_with_filters(store: Store) -> None:
    ids = []
    for _ in range(5):
        task = _task()
        ids.append(await store.create_task(task))
    await store.create_task(_task("bob"))
    await store.finish_failed(ids[1], "video_file_broken", "bad")
    page, total = await store.list_tasks("alice", offset=1, limit=2)
    assert total == 5 and [r.id for r in page] == [ids[3], ids[2]]
    failed, n = await store.list_tasks("alice", statuses=["failed"])
    assert n == 1 and failed[0].id == ids[1] and failed[0].error_code == "video_file_broken"
    assert await store.status_counts() == {"processing": 5, "ready": 0, "failed": 1}
    assert await store.status_counts(owner="bob") == {"processing": 1, "ready": 0, "failed": 0}


async def test_store_result_commits_with_the_status(store: Store) -> None:
    task_id = await store.create_task(_task())
    assert await store.start_attempt(task_id) == 1
    await store.set_progress(task_id, 1, 3)
    rec = await store.get_task(task_id)
    assert rec is not None and (rec.clips_done, rec.clips_total) == (1, 3)
    segments = [_segment("visual", 0), _segment("audio", 0), _segment("visual", 6)]
    await store.finish_ready(task_id, segments, duration=12.0)
    rec = await store.get_task(task_id)
    assert rec is not None and rec.status == "ready" and rec.duration == 12.0
    assert rec.clips_total is None
    assert await store.get_segments(task_id) == segments
    assert await store.get_segments(task_id, options=["visual"]) == segments[::2]
    # A terminal task does not change again, and counts no more attempts.
    await store.finish_failed(task_id, "internal_error", "late")
    assert (await store.get_task(task_id)).status == "ready"  # type: ignore[union-attr]
    assert await store.start_attempt(task_id) == 0
    assert task_id not in await store.processing_ids()


async def test_store_resumes_processing_oldest_first(store: Store) -> None:
    ids = [await store.create_task(_task()) for _ in range(3)]
    await store.finish_failed(ids[1], "internal_error", "x")
    assert await store.processing_ids() == [ids[0], ids[2]]
    assert await store.prune_idempotency(older_than=0.0) == 0


# -- TaskQueue --------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["in-process", "postgresql"])
async def queue(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[TaskQueue]:
    if request.param == "in-process":
        yield InProcessQueue(clock=clock)
        return
    from aioembed.server._pg_queue import PostgresQueue

    dsn: str = request.getfixturevalue("postgres_dsn")
    schema = f"t_{new_task_id().lower()}"  # a fresh schema per test
    async with PostgresQueue(dsn, schema=schema, clock=clock, poll=0.2) as made:
        yield made


async def test_queue_claims_in_order_and_submit_is_idempotent(queue: TaskQueue) -> None:
    for task_id in ("a", "b", "a"):
        await queue.submit(task_id)
    assert await queue.counts() == {"queued": 2, "delayed": 0, "leased": 0}
    first = await queue.claim(lease=10, wait=0)
    assert first is not None and first.task_id == "a"
    await queue.submit("a")  # leased: left as it is
    second = await queue.claim(lease=10, wait=0)
    assert second is not None and second.task_id == "b" and second.token != first.token
    assert await queue.claim(lease=10, wait=0) is None
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 2}
    await queue.complete(first)
    with pytest.raises(LeaseLost):
        await queue.complete(first)  # completing twice is a stale holder too


async def test_queue_heartbeat_extends_the_lease(queue: TaskQueue, clock: Clock) -> None:
    await queue.submit("a")
    lease = await queue.claim(lease=10, wait=0)
    assert lease is not None
    clock.now += 8
    lease = await queue.heartbeat(lease, extend=10)
    clock.now += 8  # past the first expiry, within the extended one
    assert await queue.reclaim_expired() == 0
    await queue.complete(lease)
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 0}


async def test_queue_expired_lease_is_reclaimed_and_the_stale_holder_fenced(
    queue: TaskQueue, clock: Clock
) -> None:
    await queue.submit("a")
    stale = await queue.claim(lease=10, wait=0)
    assert stale is not None
    clock.now += 11
    with pytest.raises(LeaseLost):
        await queue.heartbeat(stale, extend=10)  # expired: no resurrection
    assert await queue.reclaim_expired() == 1
    fresh = await queue.claim(lease=10, wait=0)
    assert fresh is not None and fresh.task_id == "a" and fresh.token != stale.token
    for refused in (queue.complete(stale), queue.fail(stale, retry_in=None)):
        with pytest.raises(LeaseLost):
            await refused
    with pytest.raises(LeaseLost):
        await queue.heartbeat(stale, extend=10)
    await queue.complete(fresh)  # the new holder is unaffected


async def test_queue_fail_retries_after_the_delay(queue: TaskQueue, clock: Clock) -> None:
    await queue.submit("a")
    lease = await queue.claim(lease=10, wait=0)
    assert lease is not None
    await queue.fail(lease, retry_in=5)
    assert await queue.counts() == {"queued": 0, "delayed": 1, "leased": 0}
    assert await queue.claim(lease=10, wait=0) is None
    clock.now += 5
    again = await queue.claim(lease=10, wait=0)
    assert again is not None and again.task_id == "a"
    await queue.fail(again, retry_in=None)
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 0}


async def test_queue_claim_waits_for_a_submit(queue: TaskQueue) -> None:
    waiter = asyncio.ensure_future(queue.claim(lease=10, wait=30))
    await asyncio.sleep(0)
    assert not waiter.done()
    await queue.submit("late")
    lease = await asyncio.wait_for(waiter, 5)
    assert lease is not None and lease.task_id == "late"


async def test_queue_concurrent_claimers_never_share_a_task(queue: TaskQueue) -> None:
    ids = [f"t{i}" for i in range(24)]
    for task_id in ids:
        await queue.submit(task_id)

    async def drain() -> list[str]:
        got = []
        while (lease := await queue.claim(lease=10, wait=0)) is not None:
            got.append(lease.task_id)
            await queue.complete(lease)
        return got

    taken = [t for part in await asyncio.gather(*(drain() for _ in range(4))) for t in part]
    assert sorted(taken) == sorted(ids)  # each exactly once


async def test_postgres_queue_wakes_a_claimer_in_another_process_by_notify(
    postgres_dsn: str,
) -> None:
    from aioembed.server._pg_queue import PostgresQueue

    schema = f"t_{new_task_id()}"
    # poll=60: only the NOTIFY (sent by another connection, as another host would) can wake it.
    async with (
        PostgresQueue(postgres_dsn, schema=schema, poll=60) as worker,
        PostgresQueue(postgres_dsn, schema=schema) as replica,
    ):
        waiter = asyncio.ensure_future(worker.claim(lease=10, wait=60))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        await replica.submit("from-the-replica")
        lease = await asyncio.wait_for(waiter, 10)
        assert lease is not None and lease.task_id == "from-the-replica"
        assert await replica.counts() == {"queued": 0, "delayed": 0, "leased": 1}


# -- MediaStore -------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
async def media(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    root = tmp_path / "media"
    root.mkdir()
    if request.param == "local":
        yield LocalMediaStore(root)
        return
    from aioembed.server._s3_media import MIN_PART, S3Location, S3MediaStore

    endpoint: str = request.getfixturevalue("s3_endpoint")
    request.getfixturevalue("s3_env")
    location = S3Location.parse(f"s3://b-{new_task_id()}/some/prefix")
    # The smallest part S3 allows, so a test file of a few MiB is a real multipart upload.
    store = S3MediaStore(
        location, scratch=root, endpoint_url=endpoint, part_size=MIN_PART, sweep_grace=0
    )
    async with store:
        await store._s3.create_bucket(Bucket=location.bucket)
        yield store


def _upload(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"{new_task_id()}.part"
    path.write_bytes(data)
    return path


async def test_media_adopt_read_drop(media: MediaStore, tmp_path: Path) -> None:
    task_id, source = new_task_id(), _upload(tmp_path, b"video bytes")
    await media.adopt(task_id, source)
    assert not source.exists()
    async with media.local(task_id) as path:
        assert path is not None and path.read_bytes() == b"video bytes"
    await media.drop(task_id)
    await media.drop(task_id)  # dropping twice is fine
    async with media.local(task_id) as path:
        assert path is None


async def test_media_large_input_round_trips(media: MediaStore, tmp_path: Path) -> None:
    # Bigger than one S3 part (5 MiB), not a multiple of it: three parts, the last short.
    data = bytes(range(256)) * (11 * 4096 + 7)
    task_id = new_task_id()
    await media.adopt(task_id, _upload(tmp_path, data))
    async with media.local(task_id) as path:
        assert path is not None and path.read_bytes() == data


async def test_media_sweep_keeps_only_the_listed(media: MediaStore, tmp_path: Path) -> None:
    keep, orphan = new_task_id(), new_task_id()
    for task_id in (keep, orphan):
        await media.adopt(task_id, _upload(tmp_path, task_id.encode()))
    assert await media.sweep([keep]) == 1
    async with media.local(keep) as kept, media.local(orphan) as gone:
        assert kept is not None and gone is None


async def test_media_refuses_what_is_not_a_task_id(media: MediaStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await media.adopt("../../etc/passwd", _upload(tmp_path, b"x"))


# -- the service core stands without HTTP -----------------------------------------------------


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, following aioembed's own modules (read, not run)."""
    import ast
    import importlib.util

    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not name.startswith("aioembed"):
            continue
        package = name if spec.origin.endswith("__init__.py") else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif (
                isinstance(node, ast.ImportFrom)
                and node.module is not None
                or (isinstance(node, ast.ImportFrom) and node.level)
            ):
                assert isinstance(node, ast.ImportFrom)
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    prefix = ".".join(parts[: len(parts) - node.level + 1])
                    base = f"{prefix}.{base}" if base else prefix
                todo.append(base)
    return seen


def test_the_service_core_imports_no_http_stack() -> None:
    for module in ("aioembed.server._service", "aioembed.server._dispatch"):
        reached = {m.split(".")[0] for m in _imports(module)}
        assert "aiohttp" not in reached, module


# -- results and lease release in one transaction (PostgreSQL) --------------------------------


@pytest.fixture
async def pg_pair(postgres_dsn: str, clock: Clock) -> AsyncIterator[tuple[Any, Any]]:
    """A PostgresStore and a PostgresQueue in one fresh schema (as operator mode runs them)."""
    from aioembed.server._pg_queue import PostgresQueue
    from aioembed.server._pg_store import PostgresStore

    schema = f"t_{new_task_id()}"
    store = PostgresStore(postgres_dsn, schema=schema)
    await store.open()
    try:
        async with PostgresQueue(postgres_dsn, schema=schema, clock=clock) as queue:
            yield store, queue
    finally:
        await store.close()


async def test_postgres_store_fences_only_its_own_queue(
    pg_pair: tuple[Any, Any], postgres_dsn: str
) -> None:
    from aioembed.server._fenced import fenced_store
    from aioembed.server._pg_queue import PostgresQueue

    store, queue = pg_pair
    assert fenced_store(store, queue) is store
    assert fenced_store(store, InProcessQueue()) is None
    assert fenced_store(store, PostgresQueue(postgres_dsn, schema="elsewhere")) is None
    assert fenced_store(SqliteStore(Path("unused.sqlite3")), queue) is None


async def _reclaimed_twice(store: Any, queue: Any, clock: Clock) -> tuple[str, Any, Any]:
    """A task claimed, its lease expired and reclaimed, and claimed again: two holders."""
    task_id = await store.create_task(_task())
    await queue.submit(task_id)
    stale = await queue.claim(lease=10, wait=0)
    clock.now += 11
    assert await queue.reclaim_expired() == 1
    fresh = await queue.claim(lease=10, wait=0)
    assert stale is not None and fresh is not None and fresh.token != stale.token
    return task_id, stale, fresh


async def _segment_rows(store: Any, task_id: str) -> int:
    return int(
        await store._db.fetchval(
            f"SELECT count(*) FROM {store._s}.segments WHERE task_id = $1", task_id
        )
    )


async def test_postgres_duplicate_completion_after_reclaim_writes_once(
    pg_pair: tuple[Any, Any], clock: Clock
) -> None:
    store, queue = pg_pair
    task_id, stale, fresh = await _reclaimed_twice(store, queue, clock)
    stale_result = [_segment("visual", 0), _segment("visual", 6), _segment("visual", 12)]
    fresh_result = [_segment("visual", 0), _segment("audio", 0)]
    # Both holders finish at once: exactly one commits, the stale one is refused.
    outcomes = await asyncio.gather(
        store.finish_ready_fenced(stale, stale_result, duration=18.0),
        store.finish_ready_fenced(fresh, fresh_result, duration=12.0),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], LeaseLost) and outcomes[1] is None
    assert await store.get_segments(task_id) == fresh_result
    assert await _segment_rows(store, task_id) == 2
    assert (await store.get_task(task_id)).duration == 12.0
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 0}
    # Finishing again with either lease writes nothing more.
    for lease in (stale, fresh):
        with pytest.raises(LeaseLost):
            await store.finish_ready_fenced(lease, stale_result, duration=18.0)
    assert await _segment_rows(store, task_id) == 2


async def test_postgres_stale_holder_first_writes_nothing(
    pg_pair: tuple[Any, Any], clock: Clock
) -> None:
    store, queue = pg_pair
    task_id, stale, fresh = await _reclaimed_twice(store, queue, clock)
    with pytest.raises(LeaseLost):
        await store.finish_ready_fenced(stale, [_segment("visual", 0)], duration=6.0)
    with pytest.raises(LeaseLost):
        await store.finish_failed_fenced(stale, "internal_error", "late")
    rec = await store.get_task(task_id)
    assert rec is not None and rec.status == "processing"
    assert await _segment_rows(store, task_id) == 0
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 1}  # fresh holds it
    await store.finish_failed_fenced(fresh, "video_file_broken", "bad")
    rec = await store.get_task(task_id)
    assert rec is not None and rec.status == "failed"
    assert await queue.counts() == {"queued": 0, "delayed": 0, "leased": 0}
