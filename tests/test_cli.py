"""The ``aioembed`` command as a subprocess, against the real local server or its embedded one."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from aioembed.samples import retag

from _cli import kill_cli_after, run_cli

TASKS = "/v1.3/embed/tasks"


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
    await kill_cli_after(
        "embed", str(d), "--out", str(out), "--concurrency", "4",
        env=remote, created=lambda: live_server.counts(TASKS, "POST"), count=3,
    )  # fmt: skip
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

    # demo uses the embedded server even when a TwelveLabs key is set, and writes its
    # videos into the cache, not the current directory.
    code, stdout, stderr = await run_cli(
        "demo", env={**env, "TWELVELABS_API_KEY": "tlk_not_used"}, cwd=tmp_path
    )
    assert code == 0, stderr
    assert "cosine similarity" in stdout and "ocean'@0s" in stdout
    assert (tmp_path / "cache" / "demo" / "ocean.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "e.jsonl", "in"]
    # The closing lines are the table's own figures, so they cannot contradict it.
    found = re.findall(
        r"(visual-text|audio): ocean' against ocean at the same time (\d\.\d\d)-(\d\.\d\d); "
        r"city against either at most (-?\d\.\d\d)\.",
        stdout,
    )
    assert [f[0] for f in found] == ["visual-text", "audio"], stdout[-1500:]
    cells = {float(x) for x in re.findall(r"(-?\d\.\d\d)", stdout.split("ocean' is")[0])}
    for _, low, high, city in found:
        assert {float(low), float(high), float(city)} <= cells
    assert "match neither" not in stdout


# -- issue 14: failures that hide their cause, outputs, rendering ------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".npz"])
async def test_a_batch_with_no_success_still_summarises_and_writes_an_empty_output(
    remote: dict[str, str], tmp_path: Path, video_factory: Any, suffix: str
) -> None:
    broken = video_factory.file("all-broken.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x02" * 3000)
    out = tmp_path / f"none{suffix}"
    code, stdout, stderr = await run_cli(
        "embed", str(broken), "--out", str(out), env=remote, cwd=tmp_path
    )
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "video_file_broken" in stdout and "1 of 1 failed" in stderr  # the summary and why
    assert "wrote 0 segments" in stderr
    assert "--resume" not in stderr  # a broken file is broken next time too
    if suffix == ".parquet":
        table = pq.read_table(out)
        assert table.num_rows == 0
        assert table.schema.field("vector").type.list_size == 1024
        assert table.schema.metadata[b"model_name"] == b"Marengo-retrieval-2.7"
    elif suffix == ".npz":
        with np.load(out) as data:
            assert data["vectors"].shape == (0, 1024) and data["vectors"].dtype == np.float32
            assert data["task_id"].dtype.kind == "U" and data["input"].dtype.kind == "U"
    else:
        assert out.read_text() == ""


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["retrieve", "0" * 24, "--out", "t.csv"], "unknown output format '.csv'"),
        (["embed", "x.mp4", "--out", "t.csv"], "unknown output format '.csv'"),
        (["embed", "x.mp4", "--concurrency", "0"], "--concurrency: 0 should be 1 or more"),
        (["embed", "x.mp4", "--clip-length", "11"], "outside 2-10 seconds"),
        (["embed", "x.mp4", "--model", "gpt-4"], "invalid choice: 'gpt-4'"),
        (["embed", "x.mp4", "--option", "visual"], "'visual' is not an option of Marengo"),
        (["embed", "x.mp4", "--model", "marengo3.0", "--option", "visual-text"], "use visual or"),
        (["list", "--limit", "-1"], "--limit: -1 should be 1 or more"),
    ],
)
async def test_argument_mistakes_exit_2_with_one_line_before_any_request(
    remote: dict[str, str],
    live_server: Any,
    folder: Path,
    tmp_path: Path,
    args: list[str],
    complaint: str,
) -> None:
    args = [str(folder / "a0.mp4") if a == "x.mp4" else a for a in args]
    code, stdout, stderr = await run_cli(*args, env=remote, cwd=tmp_path)
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and complaint in stderr, stderr
    assert live_server.counts() == 0  # nothing uploaded, nothing asked


async def test_resume_hint_only_for_failures_a_rerun_can_fix(
    live_server_factory: Any, folder: Path, tmp_path: Path
) -> None:
    # A server that fails every task for the server's own reason (timeout): worth a rerun.
    server = await live_server_factory(task_timeout=0.001)
    env = {
        "AIOEMBED_BASE_URL": server.base_url,
        "AIOEMBED_API_KEY": server.api_key,
        "AIOEMBED_DATA_DIR": str(tmp_path / "cache"),
    }
    out = tmp_path / "late.jsonl"
    code, stdout, stderr = await run_cli(
        "embed", str(folder / "a0.mp4"), "--out", str(out), env=env, cwd=tmp_path
    )
    assert code == 1
    assert "processing_timeout" in stdout
    assert "rerun with --resume" in stderr and Path(f"{out}.journal.sqlite").exists()


async def test_resume_without_out_finds_its_journal(
    remote: dict[str, str], live_server: Any, video_factory: Any, tmp_path: Path
) -> None:
    base = video_factory(duration=5, fps=5, seed=33)
    d = tmp_path / "noout"
    d.mkdir()
    for i in range(8):
        retag(base, d / f"n{i}.mp4", f"n{i}")
    await kill_cli_after(
        "embed", str(d), "--concurrency", "2", env=remote, cwd=tmp_path,
        created=lambda: live_server.counts(TASKS, "POST"), count=2,
    )  # fmt: skip
    [journal] = (tmp_path / "cache" / "journals").glob("*.sqlite")
    assert journal.stat().st_mode & 0o777 == 0o600  # private, in a private directory
    assert journal.parent.stat().st_mode & 0o777 == 0o700

    # Other flags than the batch's own (--resume, --concurrency) keep the journal's name.
    code, stdout, stderr = await run_cli(
        "embed", str(d), "--resume", "--concurrency", "3", env=remote, cwd=tmp_path
    )
    assert code == 0, stderr
    assert "resumed" in stdout
    assert len(await _list_ids(live_server)) == 8  # nothing embedded twice
    assert not journal.exists()  # complete: consumed, not orphaned
    assert not list((tmp_path / "cache" / "journals").glob("*.sqlite"))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_honour_the_umask(tmp_path: Path, umask: int) -> None:
    from aioembed.cli._export import Provenance, write

    meta = Provenance("Marengo-retrieval-2.7", 1024, 6.0, ["clip"], ["audio"])
    old = os.umask(umask)
    try:
        for suffix in (".jsonl", ".parquet", ".npz"):
            path = tmp_path / f"m{umask:o}{suffix}"
            write([], meta, path)
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, suffix
    finally:
        os.umask(old)


async def test_exports_carry_provenance_and_agree_across_commands(
    remote: dict[str, str], folder: Path, tmp_path: Path
) -> None:
    import hashlib

    video = folder / "a1.mp4"
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    for suffix in (".parquet", ".jsonl", ".npz"):
        code, _, stderr = await run_cli(
            "embed", "in/a1.mp4", "--out", f"p{suffix}", "--clip-length", "2.5",
            "--scope", "clip", "--scope", "video", env=remote, cwd=folder.parent,
        )  # fmt: skip
        assert code == 0, stderr
    table = pq.read_table(folder.parent / "p.parquet")
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["model_name"] == "Marengo-retrieval-2.7" and meta["api_version"] == "v1.3"
    assert meta["dimension"] == "1024" and meta["clip_length_sec"] == "2.5"
    assert meta["embedding_scope"] == "clip,video"
    assert meta["embedding_option"] == "visual-text,audio"
    assert meta["aioembed_version"] and meta["created_at"].endswith("Z")
    assert set(table.column("input").to_pylist()) == {str(video)}  # absolute
    assert set(table.column("input_sha256").to_pylist()) == {digest}
    assert set(table.column("input_size").to_pylist()) == {video.stat().st_size}
    rows = [json.loads(line) for line in (folder.parent / "p.jsonl").read_text().splitlines()]
    assert {(r["input"], r["input_sha256"], r["input_size"]) for r in rows} == {
        (str(video), digest, video.stat().st_size)
    }
    with np.load(folder.parent / "p.npz") as data:
        assert set(data["input_sha256"]) == {digest}
        assert json.loads(str(data["metadata"]))["dimension"] == "1024"

    task_id = table.column("task_id")[0].as_py()
    code, _, stderr = await run_cli(
        "retrieve", task_id, "--out", "r.parquet", env=remote, cwd=folder.parent
    )
    assert code == 0, stderr
    retrieved = pq.read_table(folder.parent / "r.parquet")
    assert retrieved.schema.names == table.schema.names
    assert retrieved.schema.field("vector").type == table.schema.field("vector").type
    assert retrieved.num_rows == table.num_rows
    r_meta = retrieved.schema.metadata
    assert r_meta[b"clip_length_sec"] == b"2.5" and r_meta[b"dimension"] == b"1024"


async def test_rendering_full_ids_single_codes_counts_and_the_copy_noted(
    remote: dict[str, str], live_server: Any, folder: Path, tmp_path: Path, video_factory: Any
) -> None:
    import shutil

    copy = tmp_path / "zz-copy.mp4"
    shutil.copyfile(folder / "a0.mp4", copy)
    broken = video_factory.file("render-broken.mp4", b"\x00" * 2000)
    code, stdout, stderr = await run_cli(
        "embed", str(folder / "a0.mp4"), str(copy), str(broken), "--concurrency", "1",
        env={**remote, "COLUMNS": "60"}, cwd=tmp_path,
    )  # fmt: skip
    assert code == 1
    lines = {line.split("\t")[0]: line.split("\t") for line in stdout.splitlines()}
    assert lines[str(copy)][4] == f"same content as {folder / 'a0.mp4'}"
    assert lines[str(folder / "a0.mp4")][4] == ""
    assert lines[str(copy)][1] == lines[str(folder / "a0.mp4")][1]
    note = lines[str(broken)][4]
    assert note.startswith("video_file_broken: ") and note.count("video_file_broken") == 1
    assert "3/3" in stderr and "bytes" not in stderr

    ids = await _list_ids(live_server)
    for columns in ("40", "200"):
        code, stdout, _ = await run_cli("list", env={**remote, "COLUMNS": columns}, cwd=tmp_path)
        assert code == 0 and all(i in stdout for i in ids)  # piped: tab-separated, whole ids
    code, stdout, _ = await run_cli(
        "list", env={**remote, "COLUMNS": "60", "FORCE_COLOR": "1"}, cwd=tmp_path
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", stdout)
    assert code == 0 and all(i in plain for i in ids)  # a narrow terminal keeps them whole


def test_recursive_glob_over_a_symlink_loop_ends(tmp_path: Path) -> None:
    from aioembed.cli._inputs import expand_inputs

    d = tmp_path / "loopy"
    (d / "sub").mkdir(parents=True)
    (d / "x.mp4").write_bytes(b"x")
    (d / "sub" / "y.mp4").write_bytes(b"y")
    (d / "sub" / ".hidden.mp4").write_bytes(b"h")
    (d / "sub" / "up").symlink_to(d, target_is_directory=True)  # a loop
    (d / "self").symlink_to(".", target_is_directory=True)  # another
    found = expand_inputs([f"{d}/**/*.mp4"])
    assert sorted(found) == [str(d / "sub" / "y.mp4"), str(d / "x.mp4")]
    assert expand_inputs([str(d)]) == [
        str(d / "sub" / ".hidden.mp4"),  # a directory gives every video in it, as before
        str(d / "sub" / "y.mp4"),
        str(d / "x.mp4"),
    ]
    assert expand_inputs([f"{d}/*.mp4"]) == [str(d / "x.mp4")]


async def test_journal_path_that_is_not_a_journal_is_refused_untouched(
    remote: dict[str, str], live_server: Any, folder: Path, tmp_path: Path
) -> None:
    video = folder / "a0.mp4"
    before = video.read_bytes()
    for extra in ([], ["--resume"]):
        code, _, stderr = await run_cli(
            "embed", str(video), "--journal", str(video), *extra, env=remote, cwd=tmp_path
        )
        assert code == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "not an aioembed journal" in lines[0], stderr
        assert video.read_bytes() == before
    assert live_server.counts(TASKS, "POST") == 0
