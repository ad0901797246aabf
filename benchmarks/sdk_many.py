"""Scenario 1 (many tasks): N short videos created concurrently, waited for, retrieved.

One 4 s, 360x360, 5 fps sample video is rendered once and remuxed into N distinct
files (``samples.retag``: new container title, new bytes and hash, same pictures and sound), so
aioembed's content deduplication cannot skip any of them. A server with 2 video
workers (``--prestart-workers``) runs in its own process; each client run is a
fresh process against it, and the server's own counters give the requests it
received during that run.

* ``official (wait N s)``: ``asyncio.gather`` of, per file,
  ``create(video_file=open(path))`` -> ``wait_for_done(sleep_interval=N)`` ->
  ``retrieve``, with the SDK's own ``wait_for_done`` (default 5 s; 1 s so it is
  not handicapped by its default).
* ``aioembed embed_many``: ``async with tasks.embed_many(paths, ...)``: shared
  list polls (``sleep_interval`` 1 s) and one retrieve per finished task.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._harness import (
    Server,
    count_delta,
    fmt_x,
    log,
    med,
    ratio,
    run_child,
    table,
)

MODEL = "Marengo-retrieval-2.7"


# -- child side ------------------------------------------------------------------------


async def official(
    base_url: str, api_key: str, paths: list[str], sleep_interval: float
) -> dict[str, Any]:
    from twelvelabs import AsyncTwelveLabs

    client = AsyncTwelveLabs(api_key=api_key, base_url=base_url, timeout=600)

    async def one(path: str) -> int:
        # What official-SDK users write: a blocking open() in async code.
        with open(path, "rb") as f:  # noqa: ASYNC230
            created = await client.embed.tasks.create(model_name=MODEL, video_file=f)
        assert created.id is not None
        # The SDK's wrapper adds wait_for_done; its type stubs only know the generated class.
        done = await client.embed.tasks.wait_for_done(  # type: ignore[attr-defined]
            created.id, sleep_interval=sleep_interval
        )
        if done.status != "ready":
            raise RuntimeError(f"task {created.id} ended {done.status}")
        task = await client.embed.tasks.retrieve(created.id)
        segments = task.video_embedding.segments if task.video_embedding else None
        return len(segments or [])

    results = await asyncio.gather(*(one(p) for p in paths), return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return {
        "ok": sum(1 for r in results if isinstance(r, int) and r > 0),
        "segments": sum(r for r in results if isinstance(r, int)),
        "errors": errors[:3],
    }


async def aioembed_many(
    base_url: str, api_key: str, paths: list[str], concurrency: int | None, sleep_interval: float
) -> dict[str, Any]:
    """``concurrency=None``: embed_many's own default."""
    from aioembed import AsyncClient

    ok = segments = 0
    errors: list[str] = []
    options: dict[str, Any] = {"sleep_interval": sleep_interval}
    if concurrency is not None:
        options["concurrency"] = concurrency
    async with (
        AsyncClient(api_key, base_url=base_url) as client,
        client.embed.tasks.embed_many(paths, **options) as outcomes,
    ):
        async for o in outcomes:
            if o.ok and o.task is not None:
                ok += 1
                segments += len(o.task.segments)
            else:
                errors.append(repr(o.error))
    return {"ok": ok, "segments": segments, "errors": errors[:3]}


# -- parent side -------------------------------------------------------------------------


def make_inputs(folder: Path, n: int) -> list[Path]:
    from aioembed.samples import make_video, retag

    folder.mkdir(parents=True, exist_ok=True)
    base = make_video(folder / "base.mp4", duration=4, width=360, height=360, fps=5, seed=7)
    return [retag(base, folder / f"v{i:04d}.mp4", f"bench-{i}") for i in range(n)]


def clients(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    waits = [1.0] if quick else [5.0, 1.0]
    out: list[tuple[str, str, dict[str, Any]]] = [
        (f"official wait_for_done({w:g} s)", "sdk_many:official", {"sleep_interval": w})
        for w in waits
    ]
    out.append(
        (
            "aioembed embed_many(concurrency=N)",
            "sdk_many:aioembed_many",
            {"concurrency": -1, "sleep_interval": 1.0},
        )
    )
    if not quick:
        out.append(
            (
                f"aioembed embed_many(default concurrency {default_concurrency()})",
                "sdk_many:aioembed_many",
                {"concurrency": None, "sleep_interval": 1.0},
            )
        )
    return out


def primary_label(labels: Iterable[str]) -> str:
    """The aioembed row the ratios use: embed_many as users call it (its default window)
    when that row ran, else the first aioembed row."""
    aio = [k for k in labels if k.startswith("aioembed")]
    return next((k for k in aio if "default concurrency" in k), aio[0])


def default_concurrency() -> int:
    """``embed_many``'s default window, read from its signature (it has changed before)."""
    import inspect

    from aioembed.client import EmbedTasks

    return int(inspect.signature(EmbedTasks.embed_many).parameters["concurrency"].default)


def run(*, quick: bool, reps: int, n: int) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="aioembed-bench-many-") as tmp_name:
        tmp = Path(tmp_name)
        paths = [str(p) for p in make_inputs(tmp / "media", n)]
        plan = clients(quick)
        with Server(tmp / "server", workers=2) as server:
            for rep in range(reps):
                for label, target, kw in plan:
                    kwargs = dict(kw)
                    if kwargs.get("concurrency") == -1:
                        kwargs["concurrency"] = n
                    before = server.counts()
                    r = run_child(
                        target,
                        {"base_url": server.base_url, "api_key": server.api_key, "paths": paths}
                        | kwargs,
                    )
                    r["requests"] = count_delta(before, server.counts())
                    if r["ok"] != n:
                        raise RuntimeError(f"many-tasks {label}: {r['ok']}/{n} ok: {r['errors']}")
                    results.setdefault(label, []).append(r)
                    log(
                        f"many-tasks rep {rep + 1}/{reps} {label}: {r['wall_s']:.1f} s wall, "
                        f"{r['cpu_s']:.2f} s CPU, {r['requests']['total']} requests"
                    )
    return {"n": n, "clients": results, "markdown": _markdown(results, n, reps)}


def _polls(req: dict[str, int]) -> int:
    return sum(
        v
        for k, v in req.items()
        if k != "total"
        and k.startswith("GET ")
        and (k.endswith("/status") or k == "GET /embed/tasks")
    )


def _markdown(results: dict[str, list[dict[str, Any]]], n: int, reps: int) -> str:
    labels = list(results)
    primary = primary_label(labels)
    aio = results[primary]
    aio_wall, aio_req = med(aio, "wall_s"), median_requests(aio)
    aio_polls = _median(_polls(r["requests"]) for r in aio)
    rows = []
    for label in labels:
        runs = results[label]
        wall, req = med(runs, "wall_s"), median_requests(runs)
        polls = _median(_polls(r["requests"]) for r in runs)
        rows.append(
            [
                label,
                f"{wall:.1f} s",
                f"{med(runs, 'cpu_s'):.2f} s",
                f"{med(runs, 'peak_growth') / 2**20:.0f} MB",
                f"{req:.0f}",
                f"{polls:.0f}",
                "-" if label.startswith("aioembed") else fmt_x(ratio(wall, aio_wall)),
                "-" if label.startswith("aioembed") else f"{ratio(aio_req, req):.2f}",
                "-" if label.startswith("aioembed") else f"{ratio(aio_polls, polls):.2f}",
            ]
        )
    breakdown = []
    for label in labels:
        ordered = sorted(results[label], key=lambda r: r["requests"]["total"])
        req = ordered[len(ordered) // 2]["requests"]
        breakdown.append([label] + [str(req.get(k, 0)) for k in _ROUTES] + [str(req["total"])])
    return "\n".join(
        [
            "## 1. Many tasks\n",
            (
                f"N = {n} distinct 4 s 360x360 5 fps videos (one render, remuxed), created "
                "concurrently, waited for and retrieved (both options, clip scope); server with 2 "
                f"video workers on this {_cores()}-core machine, in its own process; each client in "
                f"a fresh process; median of {reps}. Requests are counted by the server. "
                f"'aioembed speed-up' = official wall / aioembed wall ({primary}); "
                "'request ratio' = aioembed requests / official requests.\n"
            ),
            table(
                [
                    "client",
                    "wall",
                    "client CPU",
                    "client peak RSS growth",
                    "HTTP requests",
                    "of which polls",
                    "aioembed speed-up",
                    "request ratio (all)",
                    "request ratio (polls)",
                ],
                rows,
            ),
            "\nRequests by route (the run with the median total):\n",
            table(["client", *_ROUTES, "total"], breakdown),
            "",
        ]
    )


_ROUTES = (
    "POST /embed/tasks",
    "GET /embed/tasks/{task_id}/status",
    "GET /embed/tasks",
    "GET /embed/tasks/{task_id}",
)


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _median(values: Any) -> float:
    from ._harness import median

    return median(values)


def median_requests(runs: list[dict[str, Any]]) -> float:
    return _median(r["requests"]["total"] for r in runs)


def render(result: dict[str, Any]) -> str:
    """The section again from the raw numbers (``python -m benchmarks --render``)."""
    runs = result["clients"]
    return _markdown(runs, result["n"], min(len(r) for r in runs.values()))


def summary(result: dict[str, Any]) -> list[str]:
    res = result["clients"]
    labels = list(res)
    aio_label = primary_label(labels)
    aio = res[aio_label]
    lines = []
    for label in labels:
        if label.startswith("official"):
            runs = res[label]
            lines.append(
                f"many tasks vs {label}: aioembed {fmt_x(ratio(med(runs, 'wall_s'), med(aio, 'wall_s')))} "
                f"faster wall, {ratio(med(aio, 'cpu_s'), med(runs, 'cpu_s')):.2f}x the client CPU, "
                f"{ratio(median_requests(aio), median_requests(runs)):.2f}x the requests "
                f"({median_requests(aio):.0f} vs {median_requests(runs):.0f})"
            )
    return lines
