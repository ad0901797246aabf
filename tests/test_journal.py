"""The embed_many journal only ever touches a file that is recognisably a journal."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aioembed import AioEmbedError, AsyncClient, JournalError, RetryPolicy
from aioembed.client import Journal

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.2, budget=10)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def foreign(tmp_path: Path, video_factory: Any) -> dict[str, Path]:
    """Files a careless ``--journal`` might name: none of them may be touched."""
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE items (key TEXT)")  # even a table of the same name
    con.execute("INSERT INTO items VALUES ('precious')")
    con.commit()
    con.close()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    return {"video": video_factory(duration=4, fps=5, seed=31), "db": db, "text": text, "empty": empty}


async def test_foreign_files_are_refused_untouched(
    live_server: Any, foreign: dict[str, Path], tmp_path: Path
) -> None:
    video = foreign["video"]
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url, retry=FAST) as c:
        for name, path in foreign.items():
            before = (_digest(path), path.stat().st_mtime_ns)
            with pytest.raises(JournalError) as info:
                async with c.embed.tasks.embed_many([video], journal=path) as outcomes:
                    [o async for o in outcomes]
            assert isinstance(info.value, AioEmbedError) and info.value.path == str(path)
            assert "not an aioembed journal" in str(info.value), name
            assert (_digest(path), path.stat().st_mtime_ns) == before, name
            assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
            with pytest.raises(JournalError):
                Journal.remove(path)
            assert path.exists(), name
        with pytest.raises(JournalError) as folder:
            async with c.embed.tasks.embed_many([video], journal=tmp_path) as outcomes:
                [o async for o in outcomes]
        assert "not a regular file" in str(folder.value)
    assert live_server.counts() == 0  # refused before any item started


async def test_journal_is_created_private_reused_and_removed(
    live_server: Any, video_factory: Any, tmp_path: Path
) -> None:
    video = video_factory(duration=4, fps=5, seed=32)
    path = tmp_path / "sub" / "batch.sqlite"
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url, retry=FAST) as c:
        for _ in range(2):
            async with c.embed.tasks.embed_many([video], journal=path, sleep_interval=0.1) as out:
                [o] = [o async for o in out]
            assert o.ok
    assert o.resumed  # the second run reused the journal
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert Journal.remove(path) is True
    assert not path.exists() and not Path(f"{path}-wal").exists()
    assert Journal.remove(path) is False


async def test_corrupt_journal_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    await j.begin("k", "input", None)
    await j.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # keep the SQLite magic, wreck the schema page
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(JournalError) as info:
        await Journal(path).open()
    assert str(path) in str(info.value) and "remove it" in str(info.value)


async def test_locked_journal_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    await j.open()
    await j.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(JournalError) as info:
            await Journal(path).begin("k", "input", None)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert "locked by another run" in str(info.value)
    assert elapsed < 5, elapsed
