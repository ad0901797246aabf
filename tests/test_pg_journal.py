"""Batch tier 2: a batch's journal in PostgreSQL, shared by several `aioembed embed`
processes, one or more of them killed mid-run (real PostgreSQL via pgserver, our real
server over loopback, tiny generated videos)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_cli import run_cli

from aioembed import AsyncClient, JournalError
from aioembed.cli._merge import _rows_parquet
from aioembed.client import RateBudget
from aioembed.client._pacing import RATE_MARGIN, Pacer
from aioembed.client._pg_journal import PgJournal, redact
from aioembed.samples import retag
from aioembed.server._config import parse_rate_limit

pytestmark = pytest.mark.timeout(900)
#: Requests per minute the server allows the key; every process is given the same budget.
RATE = 300


def _url(dsn: str, **query: str) -> str:
    sep = "&" if "?" in dsn else "?"
    extra = "".join(f"{sep if i == 0 else '&'}{k}={v}" for i, (k, v) in enumerate(query.items()))
    return f"{dsn}{extra}#t{uuid.uuid4().hex[:12]}"


def test_urls_are_checked_and_passwords_never_shown() -> None:
    url = "postgresql://batch:s3cret-pw@db.example:5432/emb?lease=10#nightly"
    assert "s3cret" not in redact(url) and redact(url).startswith("postgresql://batch:***@db")
    journal = PgJournal(url)
    assert (journal.batch, journal.lease) == ("nightly", 10.0) and "s3cret" not in journal.path
    for bad in ("postgresql://u:s3cret-pw@h/db#no spaces", "postgresql://u:s3cret-pw@h/db?lease=0"):
        with pytest.raises(JournalError) as e:
            PgJournal(bad)
        assert "s3cret" not in str(e.value) and "s3cret" not in (e.value.path or "")


async def test_unreachable_database_is_a_journal_error_without_the_password() -> None:
    journal = PgJournal("postgresql://u:s3cret-pw@127.0.0.1:9/db?connect_timeout=2#x")
    with pytest.raises(JournalError) as e:
        await journal.open()
    assert "s3cret" not in str(e.value) and "127.0.0.1" in str(e.value)


async def test_claims_skip_held_items_and_expired_leases_come_back(postgres_dsn: str) -> None:
    url = _url(postgres_dsn, lease="60")
    a, b = PgJournal(url), PgJournal(url)
    try:
        keys = [f"k{i:02d}" for i in range(10)]
        await a.register([(k, k) for k in keys])
        await b.register([(k, k) for k in keys])  # idempotent: same keys, same idempotency keys
        got_a, got_b = await a.claim(6, keys), await b.claim(6, keys)
        assert len(got_a) == 6 and len(got_b) == 4 and not set(got_a) & set(got_b)
        assert await a.claim(6, keys) == [] and await b.others_open(keys) == 6
        assert await b.others_open(got_b) == 0  # only the keys asked about count
        held = got_a[0]
        first = await a.get(held)
        assert first is not None and first == await b.get(held)
        await a.set_task(held, "task-1")
        await a.complete(got_a[1:])
        # a dies: its lease runs out (set on the database's clock rather than waited for)
        assert a._pool is not None
        await a._pool.execute(
            "UPDATE aioembed_batch.items SET expires = 0 WHERE batch = $1 AND owner = $2",
            a.batch,
            a.owner,
        )
        assert await b.claim(6, keys) == [held]
        entry = await b.get(held)
        assert entry is not None and entry.task_id == "task-1"  # resumed, not re-created
        assert entry.idempotency_key == first.idempotency_key
        await b.complete([*got_b, held])
        assert await b.others_open(keys) == 0 and await b.claim(6, keys) == []
    finally:
        await a.close()
        await b.close()


async def test_processes_draw_on_one_shared_budget(postgres_dsn: str) -> None:
    """Three journals (as three processes) pacing 30 requests at 20/s with a burst of 5:
    together they take at least (30 - 5) / 20 s; with a bucket each, 15 go at once."""
    url = _url(postgres_dsn)
    journals = [PgJournal(url) for _ in range(3)]
    try:
        pacers = [Pacer(RateBudget(requests_per_minute=1200, request_burst=5)) for _ in journals]
        for journal, pacer in zip(journals, pacers, strict=True):
            journal.share(pacer)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def spend(pacer: Pacer) -> None:
            for _ in range(10):
                await pacer.request()

        await asyncio.gather(*(spend(p) for p in pacers))
        assert loop.time() - started >= (30 - 5) / (20 * RATE_MARGIN) * 0.95
    finally:
        for journal in journals:
            await journal.close()


async def _wait_for(predicate: Any, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _shared_batch(
    postgres_dsn: str,
    live_server_factory: Any,
    video_factory: Any,
    tmp_path: Path,
    *,
    items: int,
    processes: int,
    killed: int,
    seed: int,
    rate: int = RATE,
) -> None:
    """``processes`` × ``aioembed embed --journal postgresql://…`` over ``items`` videos,
    ``killed`` of them SIGKILLed at random points; every item embedded exactly once."""
    rng = random.Random(seed)
    # The server's limit binds: without one shared budget the processes' bursts add up.
    server = await live_server_factory(rate_limit=parse_rate_limit(f"{rate}/min"))
    base = video_factory(duration=4, fps=1, seed=seed)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(items):
        retag(base, inputs / f"v{i:04d}.mp4", f"v{i}")
    env = {
        **os.environ,
        "COLUMNS": "200",
        "AIOEMBED_BASE_URL": server.base_url,
        "AIOEMBED_API_KEY": server.api_key,
        "AIOEMBED_DATA_DIR": str(tmp_path / "cache"),
    }
    journal = _url(postgres_dsn, lease="2")
    parts = [tmp_path / "parts" / f"p{i}.jsonl" for i in range(processes)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioembed", "embed", str(inputs), "--journal", journal,
            "--out", str(part), "--concurrency", "4", "--requests-per-minute", str(rate),
            env=env, cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        for part in parts
    ]  # fmt: skip
    creates = "/v1.3/embed/tasks"
    victims = rng.sample(range(processes), killed)
    try:
        for victim in victims:  # each at a random point of the batch
            at = rng.randint(items // 10, items // 2)
            await _wait_for(lambda: server.counts(creates, "POST") >= at, 300)
            procs[victim].send_signal(signal.SIGKILL)
        results = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in procs)), 600 + items
        )
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
    for i, (p, (_, err)) in enumerate(zip(procs, results, strict=True)):
        if i in victims:
            assert p.returncode == -signal.SIGKILL
        else:
            assert p.returncode == 0, err.decode()[-6000:]

    written = [p for p in parts if Path(f"{p}.manifest.json").exists()]
    merged = tmp_path / "all.parquet"
    code, _, err = await run_cli(
        "merge", *map(str, written), "--out", str(merged), env=env, cwd=tmp_path
    )
    assert code == 0, err  # nothing missing, nothing failed
    rows = list(_rows_parquet(merged))
    assert {r.input for r in rows} == {str(p) for p in inputs.iterdir()}
    # Exactly once: one task per item on the server (each item's content is its own).
    async with AsyncClient(base_url=server.base_url, api_key=server.api_key) as client:
        tasks = [t async for t in client.embed.tasks.list(page_limit=50)]
    assert len(tasks) == items, f"{len(tasks)} tasks for {items} items"
    # One budget for all: the server never had to refuse a request for its rate.
    assert server.counts(status=429) == 0, f"of {server.counts()} requests"


async def test_three_processes_share_a_journal_one_killed(
    postgres_dsn: str, live_server_factory: Any, video_factory: Any, tmp_path: Path
) -> None:
    await _shared_batch(
        postgres_dsn, live_server_factory, video_factory, tmp_path,
        items=80, processes=3, killed=1, seed=81,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(3000)
async def test_four_processes_two_thousand_items_two_killed(
    postgres_dsn: str, live_server_factory: Any, video_factory: Any, tmp_path: Path
) -> None:
    await _shared_batch(
        postgres_dsn, live_server_factory, video_factory, tmp_path,
        items=2000, processes=4, killed=2, seed=82, rate=1200,
    )  # fmt: skip
