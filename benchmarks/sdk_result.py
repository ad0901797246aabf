"""Scenario 3 (big result): retrieve ~7,200 segments x 1,024 floats, get usable vectors.

Two tasks on one local server (its own process):

* **engine**: a real task. A 59 s, 360x360, 2 fps sample video (with its
  soundtrack) is rendered once and its packets are looped (remuxed, no
  re-encoding) to just under 2 hours, then embedded by the server with
  ``Marengo-retrieval-2.7``, 2 s clips, clip scope, both options (visual-text
  and audio): 3,599 clips x 2 = 7,198 segments.
* **synthetic**: a ``ready`` task with 3,600 x 2 = 7,200 random unit vectors,
  written through the server's public :class:`aioembed.server.SqliteStore` into
  its data directory before the server starts (``create_task`` +
  ``finish_ready``: the same calls the dispatcher makes).

Each client retrieves in a fresh process (time and peak RSS growth):

* ``official``: ``AsyncTwelveLabs.embed.tasks.retrieve(...)`` (httpx, ``json``,
  pydantic models), then ``[s.float_ for s in segments]`` (time and peak taken
  here: "official -> lists"), then ``np.array(vectors, float32)`` for users who
  need an array ("official -> NumPy", same process, cumulative)
* ``aioembed -> NumPy``: ``AsyncClient.embed.tasks.retrieve(...)`` (orjson,
  attrs models) then ``task.video_embedding.matrix()``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from ._harness import (
    API_KEY,
    MB,
    Server,
    fmt_mb,
    fmt_x,
    log,
    med,
    ratio,
    run_child,
    table,
)

MODEL = "Marengo-retrieval-2.7"
OPTIONS = ["visual-text", "audio"]
DIMS = 1024


# -- child side ------------------------------------------------------------------------


async def official(base_url: str, api_key: str, task_id: str) -> dict[str, Any]:
    """Lists of floats first (checkpointed), then the NumPy array a user would build."""
    import numpy as np
    from twelvelabs import AsyncTwelveLabs

    from ._harness import checkpoint

    client = AsyncTwelveLabs(api_key=api_key, base_url=base_url, timeout=600)
    task = await client.embed.tasks.retrieve(task_id, embedding_option=OPTIONS)
    segments = task.video_embedding.segments if task.video_embedding else None
    vectors = [s.float_ for s in segments or ()]
    lists = checkpoint()
    matrix = np.array(vectors, dtype=np.float32)
    return {
        "segments": len(vectors),
        "dims": len(vectors[0] or ()) if vectors else 0,
        "lists_s": lists["s"],
        "lists_peak_growth": lists["peak_growth"],
        "shape": list(matrix.shape),
    }


async def aioembed_matrix(base_url: str, api_key: str, task_id: str) -> dict[str, Any]:
    from aioembed import AsyncClient, Timeouts

    timeouts = Timeouts(request=600, read=600)
    async with AsyncClient(api_key, base_url=base_url, timeouts=timeouts) as client:
        task = await client.embed.tasks.retrieve(task_id, embedding_option=OPTIONS)
        assert task.video_embedding is not None
        matrix = task.video_embedding.matrix()
    return {"segments": int(matrix.shape[0]), "dims": int(matrix.shape[1])}


# -- parent side -------------------------------------------------------------------------


def loop_video(src: Path, dst: Path, seconds: float) -> float:
    """Concatenate ``src``'s packets with themselves up to ``seconds`` (no re-encoding);
    returns the length written. Needs ``src`` to start on a keyframe (any encoder output)."""
    import av

    with av.open(str(src)) as inp:
        span = float(inp.duration or 0) / 1_000_000
        streams = [inp.streams.video[0], *inp.streams.audio[:1]]
        with av.open(str(dst), "w") as out:
            pairs = {s.index: (s, out.add_stream_from_template(s)) for s in streams}
            last: dict[int, int] = {}
            offset = 0.0
            while offset + span <= seconds + 1e-6:
                inp.seek(0)
                for packet in inp.demux(*streams):
                    if packet.dts is None:
                        continue
                    s, o = pairs[packet.stream.index]
                    shift = round(offset / float(s.time_base or 1))
                    dts = packet.dts + shift
                    if dts <= last.get(s.index, -(2**62)):
                        continue  # keep DTS increasing across the seam
                    last[s.index] = dts
                    packet.pts = (packet.pts if packet.pts is not None else packet.dts) + shift
                    packet.dts = dts
                    packet.stream = o
                    out.mux(packet)
                offset += span
    return offset


def make_long_video(folder: Path, seconds: float) -> Path:
    from aioembed.samples import make_video

    unit = 59.0 if seconds >= 120 else min(seconds, 20.0)
    base = make_video(folder / "unit.mp4", duration=unit, width=360, height=360, fps=2, seed=11)
    if seconds <= unit:
        return base
    dst = folder / "long.mp4"
    loop_video(base, dst, seconds)
    return dst


async def insert_synthetic(data_dir: Path, clips: int, seed: int = 5) -> str:
    """A ready task of ``clips`` 2 s clips x both options, written through the store API."""
    import numpy as np

    from aioembed.server import SqliteStore
    from aioembed.server._store import NewTask, SegmentRecord, new_task_id, owner_of

    rng = np.random.default_rng(seed)
    segments = []
    for option in OPTIONS:
        vectors = rng.standard_normal((clips, DIMS), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        segments += [
            SegmentRecord(
                2.0 * i, 2.0 * i + 2.0, "clip", option, vectors[i].astype("<f4").tobytes()
            )
            for i in range(clips)
        ]
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(data_dir / "aioembed.sqlite3")
    await store.open()
    try:
        task_id = await store.create_task(
            NewTask(
                id=new_task_id(),
                owner=owner_of(API_KEY),
                model_name=MODEL,
                clip_length=2.0,
                scopes=("clip",),
                options=tuple(OPTIONS),
                input_filename="synthetic.mp4",
                duration=2.0 * clips,
            )
        )
        await store.finish_ready(task_id, segments, duration=2.0 * clips)
    finally:
        await store.close()
    return task_id


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:g} s"


async def make_engine_task(server: Server, path: Path) -> tuple[str, float, int]:
    """Create and wait for the real task; returns (id, server seconds, segments)."""
    from aioembed import AsyncClient, Limits

    async with AsyncClient(
        server.api_key, base_url=server.base_url, limits=Limits(max_upload_bytes=1 << 40)
    ) as client:
        t = time.perf_counter()
        handle = await client.embed.tasks.create(
            MODEL, video_file=path, video_clip_length=2, video_embedding_scope=["clip"]
        )
        await handle.wait(sleep_interval=1.0, timeout=3600)
        took = time.perf_counter() - t
        task = await client.embed.tasks.retrieve(handle.id, embedding_option=OPTIONS)
        return handle.id, took, len(task.segments)


CLIENTS = (
    ("official", "sdk_result:official"),
    ("aioembed -> NumPy", "sdk_result:aioembed_matrix"),
)


def run(*, quick: bool, reps: int, seconds: float, synthetic_reps: int = 1) -> dict[str, Any]:
    """The engine task with ``reps`` repetitions, the synthetic one with ``synthetic_reps``
    (0: not made). The retrieval is the same shape either way; the synthetic task is the
    cross-check that needs no engine."""
    tasks: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="aioembed-bench-result-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "server"
        clips = int(seconds // 2)
        if synthetic_reps:
            synth_clips = 100 if quick else 3600
            t = time.perf_counter()
            sid = asyncio.run(insert_synthetic(data_dir, synth_clips))
            tasks["synthetic"] = {
                "id": sid,
                "segments": 2 * synth_clips,
                "note": f"{synth_clips} clips x 2 options written through SqliteStore "
                f"in {time.perf_counter() - t:.1f} s",
            }
        t = time.perf_counter()
        media = tmp / "media"
        media.mkdir()
        video = make_long_video(media, seconds)
        made = time.perf_counter() - t
        log(f"result: {_span(seconds)} sample video made in {made:.0f} s")
        with Server(data_dir, workers=1, extra=("--task-timeout", "7200")) as server:
            tid, took, n = asyncio.run(make_engine_task(server, video))
            video.unlink()
            tasks["engine"] = {
                "id": tid,
                "segments": n,
                "note": f"{_span(seconds)} 360x360 2 fps video ({clips} clips x 2 options), "
                f"made in {made:.0f} s, upload + engine {took:.0f} s",
            }
            log(f"result: engine task ready in {took:.0f} s, {n} segments")
            for name, info in tasks.items():
                # One untimed retrieve: the server's first read of these rows is not the client's.
                info["body_bytes"] = len(
                    server.get_bytes(
                        f"embed/tasks/{info['id']}?embedding_option=visual-text"
                        "&embedding_option=audio"
                    )
                )
                per: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in CLIENTS}
                n_reps = reps if name == "engine" else synthetic_reps
                info["reps"] = n_reps
                for rep in range(n_reps):
                    for label, target in CLIENTS:
                        r = run_child(
                            target,
                            {
                                "base_url": server.base_url,
                                "api_key": server.api_key,
                                "task_id": info["id"],
                            },
                        )
                        if r["segments"] != info["segments"] or r["dims"] != DIMS:
                            raise RuntimeError(f"result {name} {label}: got {r}")
                        per[label].append(r)
                        log(
                            f"result {name} rep {rep + 1}/{n_reps} {label}: {r['wall_s']:.2f} s, "
                            f"peak RSS growth {r['peak_growth'] / MB:.0f} MB"
                        )
                results[name] = {
                    "official -> lists": [
                        r | {"wall_s": r["lists_s"], "peak_growth": r["lists_peak_growth"]}
                        for r in per["official"]
                    ],
                    "official -> NumPy": per["official"],
                    "aioembed -> NumPy": per["aioembed -> NumPy"],
                }
    return {"tasks": tasks, "results": results, "markdown": _markdown(tasks, results)}


def _markdown(
    tasks: dict[str, dict[str, Any]], results: dict[str, dict[str, list[dict[str, Any]]]]
) -> str:
    out = [
        "## 3. Big result\n",
        (
            "Retrieve every segment with both options and turn it into usable vectors; each client "
            "in a fresh process (imports done before measuring). 'official -> NumPy' is the same "
            "process continuing from the lists (cumulative time and peak). 'aioembed advantage' = "
            "official / aioembed (time and peak RSS growth; higher is better for aioembed). "
            "Client CPU is the whole child run.\n"
        ),
    ]
    for name, per in results.items():
        info = tasks[name]
        aio = per["aioembed -> NumPy"]
        rows = []
        for label, runs in per.items():
            rows.append(
                [
                    label,
                    f"{med(runs, 'wall_s'):.2f} s",
                    f"{med(runs, 'cpu_s'):.2f} s",
                    fmt_mb(med(runs, "peak_growth")),
                    "-"
                    if label.startswith("aioembed")
                    else fmt_x(ratio(med(runs, "wall_s"), med(aio, "wall_s"))),
                    "-"
                    if label.startswith("aioembed")
                    else fmt_x(ratio(med(runs, "peak_growth"), med(aio, "peak_growth"))),
                ]
            )
        out.append(
            f"### {name} task: {info['segments']} segments x {DIMS} floats "
            f"(median of {info['reps']})\n"
        )
        out.append(f"{info['note']}; response body {fmt_mb(info['body_bytes'])} of JSON.\n")
        out.append(
            table(
                [
                    "client",
                    "time to vectors",
                    "client CPU",
                    "client peak RSS growth",
                    "aioembed advantage (time)",
                    "aioembed advantage (memory)",
                ],
                rows,
            )
        )
        out.append("")
    return "\n".join(out)


def render(result: dict[str, Any]) -> str:
    """The section again from the raw numbers (``python -m benchmarks --render``)."""
    return _markdown(result["tasks"], result["results"])


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for name, per in result["results"].items():
        aio = per["aioembed -> NumPy"]
        off = per["official -> lists"]
        lines.append(
            f"big result ({name}, {result['tasks'][name]['segments']} segments): aioembed "
            f"{med(aio, 'wall_s'):.2f} s vs official {med(off, 'wall_s'):.2f} s "
            f"({fmt_x(ratio(med(off, 'wall_s'), med(aio, 'wall_s')))} faster); peak RSS growth "
            f"{fmt_mb(med(aio, 'peak_growth'))} vs {fmt_mb(med(off, 'peak_growth'))} "
            f"({ratio(med(aio, 'peak_growth'), med(off, 'peak_growth')):.2f}x)"
        )
    return lines
