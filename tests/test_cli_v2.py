"""``aioembed embed --api v2`` as a subprocess against the real local server: flags checked
before any request, the same progress, journal, resume and exports (with provenance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from aioembed import AsyncClient
from aioembed.samples import retag
from _cli import kill_cli_after, run_cli

V2_TASKS = "/v1.3/embed-v2/tasks"


@pytest.fixture
def folder(video_factory: Any, tmp_path: Path) -> Path:
    base = video_factory(duration=5, fps=5, seed=71)
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        retag(base, d / f"c{i}.mp4", f"c{i}")
    return d


async def _v2_ids(server: Any) -> list[str]:
    async with AsyncClient(server.api_key, base_url=server.base_url) as c:
        return [t.id async for t in c.embed.v2.tasks.list(page_limit=50)]


async def test_embed_v2_to_parquet_with_provenance(
    remote: dict[str, str], live_server: Any, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "v2.parquet"
    code, stdout, stderr = await run_cli(
        "embed", str(folder), "--out", str(out), "--api", "v2", "--model", "marengo3.0",
        "--segmentation", "fixed:2", "--option", "visual", "--option", "audio",
        "--scope", "clip", "--scope", "asset", env=remote, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    assert "3 inputs" in stdout
    table = pq.read_table(out)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert (meta["embed_api"], meta["model_name"], meta["dimension"]) == ("v2", "marengo3.0", "512")
    assert meta["segmentation"] == "fixed 2 s segments" and meta["clip_length_sec"] == "2"
    assert (meta["embedding_option"], meta["embedding_scope"]) == ("visual,audio", "clip,asset")
    assert table.schema.field("vector").type.list_size == 512
    assert set(table.column("api").to_pylist()) == {"v2"}
    # 5 s: two 2 s clips (the 1 s rest is dropped) and the asset, for each option.
    rows = table.to_pylist()
    per_input = [r for r in rows if r["input"].endswith("c0.mp4")]
    assert sorted((r["embedding_scope"], r["embedding_option"]) for r in per_input) == sorted(
        [("clip", o) for o in ("visual", "audio") for _ in range(2)]
        + [("asset", "visual"), ("asset", "audio")]
    )
    assert len(await _v2_ids(live_server)) == 3
    assert live_server.counts("/v1.3/embed/tasks", "POST") == 0


async def test_marengo35_dimension_to_jsonl_and_npz(
    remote: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    for suffix in (".jsonl", ".npz"):
        code, _, stderr = await run_cli(
            "embed", str(folder / "c1.mp4"), "--out", f"d{suffix}", "--api", "v2",
            "--model", "marengo3.5", "--embedding-dimension", "64",
            "--segmentation", "dynamic:2", env=remote, cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, stderr
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert rows and all(len(r["vector"]) == 64 and r["api"] == "v2" for r in rows)
    assert {r["model_name"] for r in rows} == {"marengo3.5"}
    with np.load(tmp_path / "d.npz") as data:
        assert data["vectors"].shape == (len(rows), 64)
        meta = json.loads(str(data["metadata"]))
    assert (meta["embed_api"], meta["dimension"]) == ("v2", "64")
    assert meta["segmentation"].startswith("dynamic") and meta["embedding_option"] == "visual,audio"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--api", "v2", "--segmentation", "fixed:11"], "duration_sec"),
        (["--api", "v2", "--segmentation", "shots:4"], "should be fixed:SECONDS"),
        (["--api", "v2", "--embedding-dimension", "64"], "requires marengo3.5"),
        (["--api", "v2", "--clip-length", "4"], "--clip-length is v1's"),
        (["--api", "v2", "--option", "visual-text"], "embedding_option"),
        (["--api", "v2", "--model", "Marengo-retrieval-2.7"], "not a v2 model"),
        (["--api", "v2", "--scope", "video"], "embedding_scope"),
        (["--segmentation", "fixed:6"], "--segmentation needs --api v2"),
        (["--scope", "asset"], "--scope asset is v2's"),
        (["--model", "marengo3.5"], "is a v2 model"),
        (["--requests-per-minute", "0"], "should be more than 0"),
    ],
)
async def test_v2_flag_mistakes_exit_2_before_any_request(
    remote: dict[str, str],
    live_server: Any,
    folder: Path,
    tmp_path: Path,
    args: list[str],
    complaint: str,
) -> None:
    code, _, stderr = await run_cli("embed", str(folder), *args, env=remote, cwd=tmp_path)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and complaint in stderr, stderr
    assert live_server.counts() == 0


async def test_killed_v2_batch_resumes_with_a_budget(
    remote: dict[str, str], live_server: Any, video_factory: Any, tmp_path: Path
) -> None:
    base = video_factory(duration=4, fps=5, seed=72)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(10):
        retag(base, d / f"m{i:02d}.mp4", f"m{i}")
    out = tmp_path / "res.parquet"
    argv = ["embed", str(d), "--out", str(out), "--api", "v2", "--segmentation", "fixed:4"]
    await kill_cli_after(
        *argv, "--concurrency", "3",
        env=remote, created=lambda: live_server.counts(V2_TASKS, "POST"), count=3,
    )  # fmt: skip
    assert not out.exists() and live_server.counts(V2_TASKS, "POST") < 10

    code, stdout, stderr = await run_cli(
        *argv, "--resume", "--requests-per-minute", "600", "--media-minutes-per-hour", "600",
        env=remote, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    assert "resumed" in stdout
    table = pq.read_table(out)
    assert len(set(table.column("input").to_pylist())) == 10
    assert len(await _v2_ids(live_server)) == 10  # no duplicate tasks
    assert live_server.counts(status=429) == 0
    assert not Path(f"{out}.journal.sqlite").exists()


async def test_status_list_retrieve_with_api_v2(
    remote: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    code, _, stderr = await run_cli(
        "embed", str(folder / "c2.mp4"), "--out", "e.parquet", "--api", "v2",
        "--segmentation", "fixed:2", "--option", "visual", env=remote, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    embedded = pq.read_table(tmp_path / "e.parquet")
    task_id = embedded.column("task_id")[0].as_py()
    code, stdout, _ = await run_cli("list", "--api", "v2", env=remote, cwd=tmp_path)
    assert code == 0 and task_id in stdout and "marengo3.0" in stdout
    code, stdout, _ = await run_cli("list", env=remote, cwd=tmp_path)
    assert code == 0 and task_id not in stdout  # v1's list does not show v2 tasks
    code, stdout, _ = await run_cli("status", task_id, "--api", "v2", env=remote, cwd=tmp_path)
    status = json.loads(stdout)
    assert code == 0 and status["status"] == "ready" and "data" not in status
    code, _, stderr = await run_cli(
        "retrieve", task_id, "--api", "v2", "--option", "visual", "--out", "r.parquet",
        env=remote, cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    retrieved = pq.read_table(tmp_path / "r.parquet")
    assert retrieved.schema.names == embedded.schema.names
    assert retrieved.schema.field("vector").type == embedded.schema.field("vector").type
    assert retrieved.num_rows == embedded.num_rows
    meta = retrieved.schema.metadata
    assert (meta[b"embed_api"], meta[b"model_name"], meta[b"clip_length_sec"]) == (
        b"v2",
        b"marengo3.0",
        b"2",
    )
    assert np.allclose(
        np.stack(retrieved.column("vector").to_numpy(zero_copy_only=False)),
        np.stack(embedded.column("vector").to_numpy(zero_copy_only=False)),
    )
