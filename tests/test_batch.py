"""embed_many / watch_many against the real local server."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import anyio

from aioembed import (
    AsyncClient,
    BatchItem,
    NotFoundError,
    Outcome,
    ParameterError,
    RetryPolicy,
    TaskStatus,
)

TASKS = "/v1.3/embed/tasks"
TASK = "/v1.3/embed/tasks/{task_id}"
STATUS = "/v1.3/embed/tasks/{task_id}/status"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.2, budget=10)


async def collect(client: AsyncClient, inputs: Any, **kw: Any) -> list[Outcome]:
    kw.setdefault("sleep_interval", 0.1)
    async with client.embed.tasks.embed_many(inputs, **kw) as outcomes:
        return [o async for o in outcomes]


async def test_fifty_videos_one_outcome_each(
    client: AsyncClient, live_server: Any, videos: Any
) -> None:
    paths = videos(50)
    outcomes = await collect(client, paths, concurrency=16, embedding_option=["visual-text"])
    assert sorted(o.index for o in outcomes) == list(range(50))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert len({o.task_id for o in outcomes}) == 50
    for o in outcomes:
        assert o.task is not None and o.status is TaskStatus.READY
        assert {s.embedding_option for s in o.task.segments} == {"visual-text"}
    # A create may be retried after a dropped connection; its Idempotency-Key keeps it one task.
    assert 50 <= live_server.counts(TASKS, "POST") <= 55
    assert len([t async for t in client.embed.tasks.list(page_limit=50)]) == 50
    assert live_server.counts(TASK, "GET") == 50  # one retrieve each, which also confirms status
    assert live_server.counts(STATUS, "GET") == 0


async def test_bad_inputs_fail_alone(
    client: AsyncClient, live_server: Any, videos: Any, video_factory: Any, tmp_path: Path
) -> None:
    good = videos(4)
    empty = video_factory.file("empty.mp4", b"")
    text = video_factory.file("notes.mp4", b"this is not a video\n" * 100)
    missing = tmp_path / "missing.mp4"
    bad_params = BatchItem(video_file=good[0], video_clip_length=12)
    outcomes = await collect(client, [*good, empty, text, missing, bad_params], ordered=True)
    assert [o.index for o in outcomes] == list(range(8))
    assert [o.ok for o in outcomes] == [True] * 4 + [False] * 4
    codes = [getattr(o.error, "code", None) for o in outcomes[4:]]
    assert codes == [
        "video_file_broken",
        "video_file_broken",
        "parameter_invalid",
        "parameter_invalid",
    ]
    assert isinstance(outcomes[6].error, ParameterError) and "missing.mp4" in str(outcomes[6].error)
    assert isinstance(outcomes[7].error, ParameterError) and "video_clip_length" in str(
        outcomes[7].error
    )
    # The broken files reached the server (400); the missing file and bad params never left
    # the client. (Counted by answer: a create retried after a dropped connection is a replay.)
    assert live_server.counts(TASKS, "POST", 400) == 2
    assert len([t async for t in client.embed.tasks.list()]) == 4


async def test_same_content_embedded_once(
    client: AsyncClient, live_server: Any, videos: Any, tmp_path: Path
) -> None:
    [a, b] = videos(2)
    twin = shutil.copyfile(a, tmp_path / "twin.mp4")
    outcomes = await collect(client, [a, twin, b])
    by_label = {Path(o.item.label).name: o for o in outcomes}
    assert by_label["twin.mp4"].task_id == by_label[a.name].task_id
    assert by_label["twin.mp4"].deduplicated or by_label[a.name].deduplicated
    assert all(o.ok for o in outcomes)
    assert len([t async for t in client.embed.tasks.list()]) == 2


async def test_interrupted_batch_resumes_without_duplicates(
    client: AsyncClient, live_server: Any, videos: Any, tmp_path: Path
) -> None:
    paths = videos(12)
    journal = tmp_path / "batch.sqlite"
    first: list[Outcome] = []
    async with client.embed.tasks.embed_many(
        paths, concurrency=6, journal=journal, sleep_interval=0.1
    ) as outcomes:
        async for o in outcomes:
            first.append(o)
            if len(first) == 3:
                break  # leaving the block cancels everything still in flight
    created_before = live_server.counts(TASKS, "POST")
    assert 3 <= created_before <= 12

    second = await collect(client, paths, concurrency=6, journal=journal)
    assert sorted(o.index for o in second) == list(range(12))
    assert all(o.ok for o in second)
    assert sum(o.resumed for o in second) >= 3
    tasks = [t async for t in client.embed.tasks.list(page_limit=50)]
    assert len(tasks) == 12  # no duplicate task, whatever was in flight at the interruption
    assert {o.task_id for o in second} == {t.id for t in tasks}

    # A create cut off by the interruption is sent again with its journaled key (the
    # server replays the same task), so POSTs may exceed tasks; a finished batch sends none.
    posts_after_second = live_server.counts(TASKS, "POST")
    third = await collect(client, paths, journal=journal)
    assert all(o.resumed and o.ok for o in third)
    assert live_server.counts(TASKS, "POST") == posts_after_second


async def test_watch_many_polls_in_bulk(live_server_factory: Any, videos: Any) -> None:
    server = await live_server_factory(workers=2)
    [video] = videos(1)
    async with AsyncClient(server.api_key, base_url=server.base_url, retry=FAST) as client:
        ids = [(await client.embed.tasks.create(video_file=video)).id for _ in range(200)]
        before_list = server.counts(TASKS, "GET")
        before_status = server.counts(STATUS, "GET")
        finals = {}
        async with client.embed.tasks.watch_many(ids + ["0" * 24], sleep_interval=0.2) as updates:
            async for u in updates:
                if u.final:
                    finals[u.task_id] = u
    missing = finals.pop("0" * 24)
    assert isinstance(missing.error, NotFoundError)
    assert len(finals) == 200 and all(
        u.task and u.task.status is TaskStatus.READY for u in finals.values()
    )
    lists = server.counts(TASKS, "GET") - before_list
    statuses = server.counts(STATUS, "GET") - before_status
    print(f"watch_many over 200 tasks: {lists} list + {statuses} status requests")
    # Fewer requests for the whole watch than per-task polling makes in a single round.
    assert lists + statuses < 200


async def test_watch_many_deadline(live_server_factory: Any, video_factory: Any) -> None:
    server = await live_server_factory(workers=1)
    long = video_factory(duration=40, fps=5, seed=22)
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        ids = [(await client.embed.tasks.create(video_file=long)).id for _ in range(3)]
        finals = []
        async with client.embed.tasks.watch_many(
            ids, sleep_interval=0.1, task_timeout=0.3
        ) as updates:
            async for u in updates:
                if u.final:
                    finals.append(u)
    late = [u for u in finals if u.error is not None]
    assert late and all(type(u.error).__name__ == "WaitTimeoutError" for u in late)
    assert len(finals) == 3


async def test_waits_ride_through_a_server_restart(server_process: Any, videos: Any) -> None:
    """With the default RetryPolicy, a server down for longer than the transport's own
    retries does not fail the waits: the tasks are fine, only the service was away."""
    server = server_process()
    paths = videos(6)
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        ids = [(await client.embed.tasks.create(video_file=p)).id for p in paths]
        server.kill()
        finals: dict[str, Any] = {}

        async def restart_later() -> None:
            await asyncio.sleep(6)  # well past the default policy's ~2-4 s of refused retries
            await asyncio.to_thread(server.start)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(restart_later())
            async with client.embed.tasks.watch_many(ids, sleep_interval=0.2) as updates:
                async for u in updates:
                    if u.final:
                        finals[u.task_id] = u
    assert set(finals) == set(ids)
    assert all(u.error is None and u.task.status is TaskStatus.READY for u in finals.values())


async def test_user_keys_with_dedupe_one_outcome_each(
    client: AsyncClient, videos: Any, tmp_path: Path
) -> None:
    """A caller's own ``key`` (no ``|`` in it) once broke the dedupe step with an IndexError
    that escaped as an ExceptionGroup; identical content under two keys is still one task."""
    [a, b] = videos(2)
    twin = shutil.copyfile(a, tmp_path / "twin.mp4")
    items = [
        BatchItem(video_file=a, key="clip-1"),
        BatchItem(video_file=twin, key="clip-2"),
        BatchItem(video_file=b, key="clip-3"),
    ]
    outcomes = await collect(client, items, journal=tmp_path / "keys.sqlite", ordered=True)
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert outcomes[0].task_id == outcomes[1].task_id
    assert outcomes[0].deduplicated != outcomes[1].deduplicated
    assert len([t async for t in client.embed.tasks.list()]) == 2


async def test_special_files_fail_alone_and_fast(
    client: AsyncClient, live_server: Any, videos: Any, tmp_path: Path
) -> None:
    """/dev/zero was hashed forever and a FIFO with no writer blocked the open; a control
    character in a file name made aiohttp raise a bare ValueError that ended the batch."""
    [good, other] = videos(2)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    odd = tmp_path / "a\nb\x07.mp4"
    shutil.copyfile(other, odd)
    with anyio.fail_after(60):
        outcomes = await collect(client, [good, "/dev/zero", fifo, odd], ordered=True)
    assert [o.ok for o in outcomes] == [True, False, False, True]
    for bad in outcomes[1:3]:
        assert isinstance(bad.error, ParameterError) and "not a regular file" in bad.error.message
    sent = await client.embed.tasks.retrieve(outcomes[3].task_id or "")
    assert sent.metadata is not None and sent.metadata.input_filename == "a_b_.mp4"
