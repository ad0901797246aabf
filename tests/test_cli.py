"""The ``aioembed`` command as a subprocess, against the real local server or its embedded one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from aioembed.samples import retag

TASKS = "/v1.3/embed/tasks"


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 240
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioembed",
        *args,
        env={**os.environ, "COLUMNS": "200", **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def remote(live_server: Any, tmp_path: Path) -> dict[str, str]:
    return {
        "AIOEMBED_BASE_URL": live_server.base_url,
        "AIOEMBED_API_KEY": live_server.api_key,
        "AIOEMBED_DATA_DIR": str(tmp_path / "cache"),
    }


@pytest.fixture
def folder(video_factory: Any, tmp_path: Path) -> Path:
    base = video_factory(duration=5, fps=5, seed=31)
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    for i in range(3):
        retag(base, d / f"a{i}.mp4", f"a{i}")
    retag(base, d / "sub" / "b.mov", "b")
    (d / "readme.txt").write_text("not a video, and not picked up from a directory")
    return d


async def test_embed_dir_to_jsonl(
    remote: dict[str, str], live_server: Any, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = await run_cli(
        "embed",
        str(folder),
        "--out",
        str(out),
        "--clip-length",
        "2.5",
        "--scope",
        "clip",
        "--scope",
        "video",
        "--option",
        "audio",
        env=remote,
        cwd=tmp_path,
    )
    assert code == 0, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {Path(r["input"]).name for r in rows} == {"a0.mp4", "a1.mp4", "a2.mp4", "b.mov"}
    assert {r["embedding_option"] for r in rows} == {"audio"}
    assert {r["embedding_scope"] for r in rows} == {"clip", "video"}
    assert all(len(r["vector"]) == 1024 and r["task_id"] for r in rows)
    per_input = [
        r for r in rows if r["input"].endswith("a0.mp4") and r["embedding_scope"] == "clip"
    ]
    assert [(r["start_offset_sec"], r["end_offset_sec"]) for r in per_input] == [
        (0.0, 2.5),
        (2.5, 5.0),
    ]
    assert "4 inputs" in stdout and len(await _list_ids(live_server)) == 4


async def test_parquet_npz_and_failures(
    remote: dict[str, str], folder: Path, tmp_path: Path, video_factory: Any
) -> None:
    broken = video_factory.file("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 4000)
    out = tmp_path / "out.parquet"
    code, stdout, stderr = await run_cli(
        "embed", str(folder / "*.mp4"), str(broken), "--out", str(out), env=remote, cwd=tmp_path
    )
    assert code == 1  # one item failed
    assert "video_file_broken" in stdout and "1 of 4 failed" in stderr
    table = pq.read_table(out)
    assert table.num_rows == 3 * 2 * 1  # 3 good videos x 2 options x one 5-second clip
    vector_type = table.schema.field("vector").type
    assert vector_type.list_size == 1024 and str(vector_type.value_type) == "float"

    npz = tmp_path / "out.npz"
    code, _, stderr = await run_cli(
        "embed", str(folder / "a0.mp4"), "--out", str(npz), env=remote, cwd=tmp_path
    )
    assert code == 0, stderr
    with np.load(npz) as data:
        assert data["vectors"].shape == (2, 1024) and data["vectors"].dtype == np.float32
        assert np.allclose(np.linalg.norm(data["vectors"], axis=1), 1, atol=1e-5)
    assert not list(tmp_path.glob(".out.*.tmp"))  # atomic writes leave no temp files


async def test_killed_batch_resumes(
    remote: dict[str, str], live_server: Any, video_factory: Any, tmp_path: Path
) -> None:
    base = video_factory(duration=5, fps=5, seed=32)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(16):
        retag(base, d / f"m{i:02d}.mp4", f"m{i}")
    out = tmp_path / "res.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioembed",
        "embed",
        str(d),
        "--out",
        str(out),
        "--concurrency",
        "4",
        env={**os.environ, **remote},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    while live_server.counts(TASKS, "POST") < 3:
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert not out.exists()
    created = live_server.counts(TASKS, "POST")
    assert created < 16

    code, stdout, stderr = await run_cli(
        "embed", str(d), "--out", str(out), "--resume", env=remote, cwd=tmp_path
    )
    assert code == 0, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["input"] for r in rows}) == 16
    listed = await _list_ids(live_server)
    assert len(listed) == 16  # no duplicate tasks
    assert "resumed" in stdout
    assert not Path(f"{out}.journal.sqlite").exists()  # a complete batch leaves no journal


async def _list_ids(server: Any) -> list[str]:
    from aioembed import AsyncClient

    async with AsyncClient(server.api_key, base_url=server.base_url) as c:
        return [t.id async for t in c.embed.tasks.list(page_limit=50)]


async def test_status_list_retrieve(
    remote: dict[str, str], live_server: Any, folder: Path, tmp_path: Path
) -> None:
    code, _, stderr = await run_cli("embed", str(folder / "a1.mp4"), env=remote, cwd=tmp_path)
    assert code == 0, stderr
    [task_id] = await _list_ids(live_server)
    code, stdout, _ = await run_cli("status", task_id, env=remote, cwd=tmp_path)
    assert code == 0 and json.loads(stdout)["status"] == "ready"
    code, stdout, _ = await run_cli("list", env=remote, cwd=tmp_path)
    assert code == 0 and task_id in stdout
    code, _, _ = await run_cli(
        "retrieve", task_id, "--out", str(tmp_path / "t.jsonl"), env=remote, cwd=tmp_path
    )
    assert code == 0 and len((tmp_path / "t.jsonl").read_text().splitlines()) == 2
    code, _, stderr = await run_cli("status", "0" * 24, env=remote, cwd=tmp_path)
    assert code == 1 and "resource_not_exist" in stderr


async def test_embedded_default_and_demo(tmp_path: Path, folder: Path) -> None:
    env = {
        "AIOEMBED_DATA_DIR": str(tmp_path / "cache"),
        "AIOEMBED_BASE_URL": "",
        "AIOEMBED_API_KEY": "",
        "TWELVELABS_API_KEY": "",
    }
    out = tmp_path / "e.jsonl"
    code, _, stderr = await run_cli(
        "embed", str(folder / "a2.mp4"), "--out", str(out), env=env, cwd=tmp_path
    )
    assert code == 0, stderr
    assert "embedded local server" in stderr and out.exists()
    assert (tmp_path / "cache" / "server" / "embedded.key").exists()

    code, stdout, stderr = await run_cli(
        "demo", "--dir", str(tmp_path / "demo"), env=env, cwd=tmp_path
    )
    assert code == 0, stderr
    assert "cosine similarity" in stdout and "ocean'@0s" in stdout
