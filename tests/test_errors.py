"""Error codes as an enum, and the typed faults the server recognises by type, not text."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioembed import _wire
from aioembed.errors import ErrorCode, ParameterError, error_for_status
from aioembed.server._store import NewTask, SqliteStore, StorageFullError, new_task_id


def test_known_codes_become_the_enum_unknown_ones_stay_text() -> None:
    known = error_for_status(400, "parameter_invalid", "m")
    assert known.code is ErrorCode.PARAMETER_INVALID
    newer = error_for_status(400, "some_future_code", "m")
    assert newer.code == "some_future_code" and not isinstance(newer.code, ErrorCode)
    assert ParameterError("m").code is ErrorCode.PARAMETER_INVALID


def test_error_body_bytes_are_plain_text_codes() -> None:
    err = error_for_status(404, ErrorCode.RESOURCE_NOT_EXIST, "gone", request_id="r1")
    assert _wire.dumps(err.to_body()) == (
        b'{"code":"resource_not_exist","message":"gone","request_id":"r1"}'
    )
    assert str(err) == "404 resource_not_exist: gone"


def test_codes_are_the_wire_spelling() -> None:
    for code in ErrorCode:
        assert code.value == code.name.lower()
        assert f"{code}" == code.value


async def test_a_full_database_raises_storage_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    await store.open()
    try:
        # A page cap makes SQLite report SQLITE_FULL exactly as a full disk does.
        await store._write(lambda conn: conn.execute("PRAGMA max_page_count = 12"))
        with pytest.raises(StorageFullError) as caught:
            for _ in range(10_000):
                task = NewTask(
                    id=new_task_id(),
                    owner="o",
                    model_name="m",
                    clip_length=6.0,
                    scopes=("clip",),
                    options=("audio",),
                    input_url="https://example.com/" + "x" * 2000,
                )
                await store.create_task(task)
        assert caught.value.errno == 28  # ENOSPC: the server's one disk-full rule
        assert await store.get_task(task.id) is None  # the failed write left nothing
    finally:
        await store.close()
