"""Batch tier 1: `aioembed embed --shard i/N` on several processes, then `aioembed merge`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _cli import run_cli

from aioembed.cli._merge import _rows_jsonl, _rows_npz, _rows_parquet
from aioembed.cli._shard import Shard
from aioembed.samples import retag


def test_shards_split_every_key_once_and_agree_everywhere() -> None:
    keys = [f"videos/{i:04d}.mp4" for i in range(400)]
    shards = [Shard.parse(f"{i}/4") for i in range(1, 5)]
    parts = [s.select(keys) for s in shards]
    assert sorted(k for p in parts for k in p) == sorted(keys)  # each key in one shard
    assert all(60 < len(p) < 140 for p in parts)  # and roughly evenly
    assert Shard.parse(" 2 / 4 ").select(keys) == parts[1]  # a pure function of the key
    assert shards[0].share(16) == 4 and Shard(3, 32).share(16) == 1
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


async def test_sharded_embed_then_merge(
    remote: dict[str, str], video_factory: Any, tmp_path: Path
) -> None:
    base = video_factory(duration=4, fps=5, seed=61)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(6):
        retag(base, inputs / f"v{i}.mp4", f"v{i}")
    broken = inputs / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    parts = [tmp_path / "parts" / name for name in ("p1.jsonl", "p2.parquet", "p3.npz")]
    # Three shards as three processes at once, each with its own part and journal.
    runs = await asyncio.gather(
        *(
            run_cli("embed", str(inputs), "--shard", f"{i}/3", "--out", str(part), env=remote,
                    cwd=tmp_path)
            for i, part in enumerate(parts, 1)
        )
    )  # fmt: skip
    owner = next(i for i in range(3) if Shard(i + 1, 3).owns(str(broken)))
    for i, (code, _, err) in enumerate(runs):
        assert code == (1 if i == owner else 0), err
    manifests = [json.loads(Path(f"{p}.manifest.json").read_text()) for p in parts]
    assert sorted(k for m in manifests for k in m["keys"]) == sorted(
        str(p) for p in inputs.iterdir()
    )
    readers = (_rows_jsonl, _rows_parquet, _rows_npz)
    counts = [len({r.input for r in read(p)}) for read, p in zip(readers, parts, strict=True)]
    assert sum(counts) == 6

    merged = tmp_path / "all.parquet"
    code, _, err = await run_cli(
        "merge", *map(str, parts), "--out", str(merged), env=remote, cwd=tmp_path
    )
    assert code == 1, err  # the broken input failed: listed, with its reason
    assert f"failed {broken}:" in err and "missing" not in err
    rows = list(_rows_parquet(merged))
    assert {r.input for r in rows} == {str(inputs / f"v{i}.mp4") for i in range(6)}
    assert len(rows) == sum(len(list(read(p))) for read, p in zip(readers, parts, strict=True))

    # A shard's part not given: the shard is named, and nothing else is invented.
    code, _, err = await run_cli(
        "merge", str(parts[0]), str(parts[1]), "--out", str(tmp_path / "some.jsonl"),
        env=remote, cwd=tmp_path,
    )  # fmt: skip
    assert code == 1 and "missing shard 3/3" in err, err
