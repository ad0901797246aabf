"""``aioembed merge PART... --out FILE``: join the output parts of a sharded batch.

Reads every part (``.jsonl``, ``.parquet`` or ``.npz``, any mix) and the manifest
each ``aioembed embed --shard`` wrote beside it (:mod:`._shard`), writes one file
with every segment, and lists what is not in it: keys that failed (with the
reason their shard recorded), keys of a shard that have no rows, and whole
shards without a part. Exit status 0 only when nothing is missing or failed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from ._errors import UsageError
from ._export import Provenance, Row, check_format, write
from ._shard import manifest_path

__all__ = ["MergeReport", "merge"]

_OPTIONAL_TEXT = ("input_sha256", "embedding_scope", "embedding_option")


def _rows_jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                data = json.loads(line)
                data["vector"] = np.asarray(data["vector"], dtype=np.float32)
                yield Row(**data)


def _rows_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for data in pq.read_table(path).to_pylist():
        data["vector"] = np.asarray(data["vector"], dtype=np.float32)
        yield Row(**data)


def _rows_npz(path: Path) -> Iterator[Row]:
    with np.load(path, allow_pickle=False) as z:
        cols = {name: z[name] for name in z.files if name != "metadata"}
    for i in range(len(cols["vectors"])):
        data: dict[str, Any] = {
            f.name: cols[f.name][i].item() for f in attrs.fields(Row) if f.name != "vector"
        }
        for name in ("start_offset_sec", "end_offset_sec"):
            data[name] = None if np.isnan(data[name]) else data[name]
        data["input_size"] = None if data["input_size"] < 0 else data["input_size"]
        for name in _OPTIONAL_TEXT:
            data[name] = data[name] or None
        yield Row(**data, vector=cols["vectors"][i])


_READERS = {".jsonl": _rows_jsonl, ".parquet": _rows_parquet, ".npz": _rows_npz}


@attrs.define
class MergeReport:
    """What a merge wrote and what it could not."""

    rows: int = 0
    inputs: int = 0
    failed: dict[str, str] = attrs.Factory(dict)
    missing: list[str] = attrs.Factory(list)
    missing_shards: list[str] = attrs.Factory(list)
    duplicates: list[str] = attrs.Factory(list)

    @property
    def complete(self) -> bool:
        return not (self.failed or self.missing or self.missing_shards)


def _manifest(part: Path) -> dict[str, Any]:
    path = manifest_path(part)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{part} has no manifest ({path.name}): was it made with --shard?") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{path} is not a readable manifest: {e}") from None
    return data


def merge(parts: Sequence[str], out: str) -> MergeReport:
    """Join ``parts`` into ``out``; raises :class:`UsageError` for unusable inputs."""
    for path in (*parts, out):
        if (problem := check_format(path)) is not None:
            raise UsageError(problem)
    report, shards, expected, rows = MergeReport(), set(), [], []
    owner: dict[str, Path] = {}  # input -> the part its rows came from
    provenance: dict[str, str] | None = None
    for name in parts:
        part = Path(name)
        manifest = _manifest(part)
        shards.add(manifest["shard"])
        expected += manifest["keys"]
        report.failed.update(manifest["failed"])
        if provenance is None:
            provenance = manifest["provenance"]
        elif _defining(provenance) != _defining(manifest["provenance"]):
            raise UsageError(f"{part} was made with other settings than {parts[0]}")
        for row in _READERS[part.suffix.lower()](part):
            if owner.setdefault(row.input, part) != part:
                if row.input not in report.duplicates:
                    report.duplicates.append(row.input)
                continue
            rows.append(row)
    assert provenance is not None
    counts = {s.split("/")[1] for s in shards}
    if len(counts) != 1:
        raise UsageError(f"the parts come from different splits: {', '.join(sorted(shards))}")
    n = int(counts.pop())
    report.missing_shards = [f"{i}/{n}" for i in range(1, n + 1) if f"{i}/{n}" not in shards]
    done = set(owner)
    report.failed = {k: v for k, v in report.failed.items() if k not in done}
    report.missing = [k for k in dict.fromkeys(expected) if k not in done and k not in report.failed]
    report.rows = write(rows, _provenance(provenance), out)
    report.inputs = len(done)
    return report


_DEFINING = ("model_name", "dimension", "clip_length_sec", "embedding_scope", "embedding_option")


def _defining(meta: dict[str, str]) -> tuple[str, ...]:
    return tuple(meta.get(k, "") for k in _DEFINING)


def _provenance(meta: dict[str, str]) -> Provenance:
    clip = meta.get("clip_length_sec", "")
    return Provenance(
        model_name=meta["model_name"],
        dimension=int(meta["dimension"]),
        clip_length=float(clip) if clip else None,
        scopes=[s for s in meta.get("embedding_scope", "").split(",") if s],
        options=[s for s in meta.get("embedding_option", "").split(",") if s],
    )


def describe(report: MergeReport, out: str | os.PathLike[str]) -> list[str]:
    """The lines the command prints: a summary, then one per key not merged."""
    lines = [f"merged {report.rows} segments of {report.inputs} input(s) into {os.fspath(out)}"]
    lines += [f"missing shard {s}: no part given for it" for s in report.missing_shards]
    lines += [f"failed {key}: {why}" for key, why in report.failed.items()]
    lines += [f"missing {key}: in no part" for key in report.missing]
    lines += [f"duplicate {key}: kept the first part's rows" for key in report.duplicates]
    return lines
