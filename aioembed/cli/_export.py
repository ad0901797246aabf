"""Writing embeddings to JSONL, Parquet or NPZ, atomically and with their provenance.

Each writer fills a temporary file beside the target and renames it into place
only when complete, so a crash never leaves a half-written file that looks done.
The temporary file is created with mode 0666 minus the umask, as ``open()``
would, so the output gets the permissions the user expects.

Every format has the same columns (:class:`Row`), an empty result included
(zero rows, the model's dimension), and carries :class:`Provenance`: Parquet as
schema metadata, NPZ as a ``metadata`` JSON string, JSONL as the per-row
``model_name`` and ``api`` plus nothing else (one row per line, no header).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .. import _wire
from .._version import __version__
from ..contract import v1
from ..contract.v2 import TaskSpec, V2Task
from ..models import EmbedTask

__all__ = [
    "FORMATS",
    "InputInfo",
    "Provenance",
    "Row",
    "check_format",
    "input_info",
    "rows_of",
    "rows_of_v2",
    "v2_provenance",
    "write",
]

API_VERSION = v1.PREFIX.strip("/")
SEGMENTATION = "fixed-length clips from the start, last clip shorter (under 2 s dropped)"


@attrs.frozen
class InputInfo:
    """Where a row's vectors came from: an absolute path (with size and SHA-256) or a URL."""

    input: str
    size: int | None = None
    sha256: str | None = None


def input_info(label: str) -> InputInfo:
    """Blocking (reads the file): call on a worker thread."""
    if label.lower().startswith(("http://", "https://")):
        return InputInfo(label)
    path = Path(label).absolute()
    try:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return InputInfo(str(path), path.stat().st_size, h.hexdigest())
    except OSError:
        return InputInfo(str(path))


@attrs.frozen
class Row:
    """One segment of one input: the columns of every export format, in this order."""

    task_id: str
    input: str
    input_size: int | None
    input_sha256: str | None
    model_name: str
    #: The Embed API that made the vector: ``v1`` or ``v2`` (``marengo3.0`` is on both).
    api: str
    start_offset_sec: float | None
    end_offset_sec: float | None
    embedding_scope: str | None
    embedding_option: str | None
    vector: Any  # float32 array of `dims`


@attrs.frozen
class Provenance:
    """What produced a file; stored as strings (Parquet metadata values must be)."""

    model_name: str
    dimension: int
    clip_length: float | None
    scopes: Sequence[str]
    options: Sequence[str]
    #: The Embed API (``v1``/``v2``) and how it cut the media into segments.
    api: str = "v1"
    segmentation: str = SEGMENTATION
    created_at: str = attrs.Factory(
        lambda: datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )

    def as_metadata(self) -> dict[str, str]:
        return {
            "aioembed_version": __version__,
            "api_version": API_VERSION,
            "embed_api": self.api,
            "model_name": self.model_name,
            "dimension": str(self.dimension),
            "clip_length_sec": "" if self.clip_length is None else f"{self.clip_length:g}",
            "segmentation": self.segmentation,
            "embedding_scope": ",".join(self.scopes),
            "embedding_option": ",".join(self.options),
            "created_at": self.created_at,
        }


def rows_of(task: EmbedTask, source: InputInfo) -> Iterator[Row]:
    for s in task.segments:
        yield Row(
            task.id,
            source.input,
            source.size,
            source.sha256,
            task.model_name or "",
            "v1",
            s.start_offset_sec,
            s.end_offset_sec,
            s.embedding_scope,
            s.embedding_option,
            s.array(),
        )


def rows_of_v2(task: V2Task, source: InputInfo, model_name: str) -> Iterator[Row]:
    for d in task.data or ():
        yield Row(
            task.id,
            source.input,
            source.size,
            source.sha256,
            model_name,
            "v2",
            d.start_sec,
            d.end_sec,
            d.embedding_scope,
            d.embedding_option,
            d.array(),
        )


def v2_provenance(spec: TaskSpec) -> Provenance:
    """What a v2 batch asked for, defaults resolved by the contract's validator."""
    seg = spec.media.segmentation
    if seg is None:
        segmentation, clip_length = "", None
    elif seg.strategy == "fixed":
        segmentation, clip_length = f"fixed {seg.seconds} s segments", float(seg.seconds)
    else:
        segmentation = f"dynamic: shot boundaries, segments of at least {seg.seconds} s"
        clip_length = None
    return Provenance(
        model_name=spec.model_name,
        dimension=spec.embedding_dimension,
        clip_length=clip_length,
        scopes=spec.media.scopes,
        options=spec.media.options,
        api="v2",
        segmentation=segmentation,
    )


def _temp_beside(path: Path) -> Path:
    """A new empty file next to ``path``, created like ``open(..., "x")`` (umask applies)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_jsonl(rows: list[Row], meta: Provenance, path: Path) -> None:
    with path.open("wb") as f:
        for row in rows:
            f.write(_wire.dumps(attrs.asdict(row, recurse=False) | {"vector": row.vector.tolist()}))
            f.write(b"\n")


def _column(rows: list[Row], name: str) -> list[Any]:
    return [getattr(row, name) for row in rows]


def _matrix(rows: list[Row], dims: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dims), dtype=np.float32)
    return np.stack([row.vector for row in rows]).astype(np.float32, copy=False)


_TEXT = (
    "task_id",
    "input",
    "input_sha256",
    "model_name",
    "api",
    "embedding_scope",
    "embedding_option",
)
_SECONDS = ("start_offset_sec", "end_offset_sec")


def _write_parquet(rows: list[Row], meta: Provenance, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = _matrix(rows, meta.dimension)
    types = {name: pa.string() for name in _TEXT} | {name: pa.float64() for name in _SECONDS}
    types["input_size"] = pa.int64()
    arrays = {
        f.name: pa.array(_column(rows, f.name), type=types[f.name])
        for f in attrs.fields(Row)
        if f.name != "vector"
    }
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    if meta.dimension > 0:
        arrays["vector"] = pa.FixedSizeListArray.from_arrays(flat, meta.dimension)
    else:  # a model we do not know the shape of, and no row to learn it from
        arrays["vector"] = pa.array([], type=pa.list_(pa.float32()))
    table = pa.table(arrays).replace_schema_metadata(meta.as_metadata())
    pq.write_table(table, path)


def _write_npz(rows: list[Row], meta: Provenance, path: Path) -> None:
    arrays: dict[str, Any] = {"vectors": _matrix(rows, meta.dimension)}
    for name in _SECONDS:
        values = [np.nan if v is None else v for v in _column(rows, name)]
        arrays[name] = np.array(values, dtype=np.float64)
    arrays["input_size"] = np.array(
        [-1 if v is None else v for v in _column(rows, "input_size")], dtype=np.int64
    )
    for name in _TEXT:
        arrays[name] = np.array(["" if v is None else str(v) for v in _column(rows, name)], dtype=str)
    arrays["metadata"] = np.array(json.dumps(meta.as_metadata()))
    with path.open("wb") as f:
        np.savez(f, **arrays)


Writer = Callable[[list[Row], Provenance, Path], None]
FORMATS: dict[str, Writer] = {
    ".jsonl": _write_jsonl,
    ".parquet": _write_parquet,
    ".npz": _write_npz,
}


def check_format(path: str | os.PathLike[str]) -> str | None:
    """``None`` when ``path``'s suffix names a format, else the one-line complaint."""
    suffix = Path(path).suffix.lower()
    if suffix in FORMATS:
        return None
    return f"unknown output format {suffix or '(none)'!r} for {os.fspath(path)}; use {', '.join(FORMATS)}"


def write(rows: Iterable[Row], meta: Provenance, path: str | os.PathLike[str]) -> int:
    """Write ``rows`` to ``path`` in the format its suffix names; returns the row count.

    Raises ``ValueError`` for an unknown suffix (check first with :func:`check_format`).
    """
    target = Path(path)
    problem = check_format(target)
    if problem is not None:
        raise ValueError(problem)
    listed = list(rows)
    with _atomic(target) as tmp:
        FORMATS[target.suffix.lower()](listed, meta, tmp)
    return len(listed)
