"""Writing embeddings to JSONL, Parquet or NPZ, atomically.

Each writer fills a temporary file beside the target and renames it into place
only when complete, so a crash never leaves a half-written file that looks done.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .. import _wire
from ..models import EmbedTask

__all__ = ["FORMATS", "Row", "rows_of", "write"]


@attrs.frozen
class Row:
    """One segment of one input: what every export format holds."""

    task_id: str
    input: str
    start_offset_sec: float | None
    end_offset_sec: float | None
    embedding_scope: str | None
    embedding_option: str | None
    vector: Sequence[float]


def rows_of(task: EmbedTask, input: str) -> Iterator[Row]:
    for s in task.segments:
        yield Row(
            task.id,
            input,
            s.start_offset_sec,
            s.end_offset_sec,
            s.embedding_scope,
            s.embedding_option,
            s.vector,
        )


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_jsonl(rows: Iterable[Row], path: Path) -> int:
    n = 0
    with path.open("wb") as f:
        for row in rows:
            f.write(_wire.dumps(attrs.asdict(row)))
            f.write(b"\n")
            n += 1
    return n


def _columns(rows: Iterable[Row]) -> dict[str, list[object]]:
    cols: dict[str, list[object]] = {f.name: [] for f in attrs.fields(Row)}
    for row in rows:
        for name in cols:
            cols[name].append(getattr(row, name))
    return cols


def _matrix(vectors: list[object]) -> np.ndarray:
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    return np.array(vectors, dtype=np.float32)


def _write_parquet(rows: Iterable[Row], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit("Parquet export needs pyarrow: pip install 'aioembed[cli]'") from None
    cols = _columns(rows)
    vectors = _matrix(cols.pop("vector"))
    dims = vectors.shape[1] if vectors.size else 0
    arrays = {name: pa.array(values) for name, values in cols.items()}
    arrays["vector"] = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1), type=pa.float32()), dims
    )
    pq.write_table(pa.table(arrays), path)
    return len(vectors)


def _write_npz(rows: Iterable[Row], path: Path) -> int:
    cols = _columns(rows)
    vectors = _matrix(cols.pop("vector"))
    arrays: dict[str, Any] = {
        name: np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if name.endswith("_sec")
        else np.array(["" if v is None else str(v) for v in values])
        for name, values in cols.items()
    }
    with path.open("wb") as f:
        np.savez(f, vectors=vectors, **arrays)
    return len(vectors)


FORMATS: dict[str, Callable[[Iterable[Row], Path], int]] = {
    ".jsonl": _write_jsonl,
    ".parquet": _write_parquet,
    ".npz": _write_npz,
}


def write(rows: Iterable[Row], path: str | os.PathLike[str]) -> int:
    """Write ``rows`` to ``path`` in the format its suffix names; returns the row count."""
    target = Path(path)
    writer = FORMATS.get(target.suffix.lower())
    if writer is None:
        raise ValueError(f"unknown output format {target.suffix!r}; use {', '.join(FORMATS)}")
    with _atomic(target) as tmp:
        return writer(rows, tmp)
