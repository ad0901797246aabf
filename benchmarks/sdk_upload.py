"""Scenario 2 (big upload) and 5 (loopback ceiling).

A sparse file of 1 GB (and 4 GB in the full run) is sent to ``POST /embed/tasks``
of a local server whose upload cap is raised above it. The server streams the
body to disk, hashes it, then probes it at create and answers ``400
video_file_broken`` (it is all zeros): the request's time is the upload plus a
probe that costs the same for every client. Each client runs in a fresh process:

* ``official-file``: ``AsyncTwelveLabs.embed.tasks.create(video_file=open(path, "rb"))``
* ``official-bytes``: the same with ``video_file=path.read_bytes()`` (how most
  examples call it); its RSS growth includes the bytes it was given, and the
  upload time excludes reading them
* ``aioembed-path``: ``AsyncClient.embed.tasks.create(video_file=path)``
* ``raw-aiohttp``: no SDK, one ``aiohttp`` POST of the same multipart form with
  the open file: the ceiling of this server on this machine

and, for scenario 5, the same clients against a trivial aiohttp server that
reads and discards the body (``client@sink``): the physical loopback limit of
aiohttp -> aiohttp with no disk and no hashing, each SDK as a fraction of it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from ._harness import (
    GB,
    MB,
    Server,
    fmt_mb,
    fmt_x,
    free_bytes,
    log,
    med,
    ratio,
    run_child,
    sparse_file,
    table,
)

MODEL = "Marengo-retrieval-2.7"
CLIENTS = ("official-file", "official-bytes", "aioembed-path", "raw-aiohttp")


# -- child side ------------------------------------------------------------------------


def _is_expected(status: int | None) -> bool:
    # 400 video_file_broken after the upload is the expected answer; 200 if probing is off.
    return status in (200, 400)


async def official_file(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    from twelvelabs import AsyncTwelveLabs
    from twelvelabs.core.api_error import ApiError

    client = AsyncTwelveLabs(api_key=api_key, base_url=base_url)
    status: int | None = 200
    t = time.perf_counter()
    with open(path, "rb") as f:  # noqa: ASYNC230 (as official-SDK users write it)
        try:
            await client.embed.tasks.create(model_name=MODEL, video_file=f)
        except ApiError as e:
            status = e.status_code
    return {"upload_s": time.perf_counter() - t, "status": status}


async def official_bytes(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    from twelvelabs import AsyncTwelveLabs
    from twelvelabs.core.api_error import ApiError

    client = AsyncTwelveLabs(api_key=api_key, base_url=base_url)
    data = Path(path).read_bytes()
    status: int | None = 200
    t = time.perf_counter()
    try:
        await client.embed.tasks.create(model_name=MODEL, video_file=data)
    except ApiError as e:
        status = e.status_code
    return {"upload_s": time.perf_counter() - t, "status": status, "held_bytes": len(data)}


async def aioembed_path(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    from aioembed import AsyncClient, Limits
    from aioembed.errors import APIStatusError

    limits = Limits(max_upload_bytes=Path(path).stat().st_size + MB)
    status: int | None = 200
    async with AsyncClient(api_key, base_url=base_url, limits=limits) as client:
        t = time.perf_counter()
        try:
            await client.embed.tasks.create(MODEL, video_file=path)
        except APIStatusError as e:
            status = e.status
        return {"upload_s": time.perf_counter() - t, "status": status}


async def raw_aiohttp(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        t = time.perf_counter()
        with open(path, "rb") as f:  # noqa: ASYNC230 (the plainest aiohttp upload)
            form = aiohttp.FormData()
            form.add_field("model_name", MODEL)
            form.add_field("video_file", f, filename=Path(path).name)
            async with session.post(
                f"{base_url}/embed/tasks", data=form, headers={"x-api-key": api_key}
            ) as resp:
                await resp.read()
                status = resp.status
        return {"upload_s": time.perf_counter() - t, "status": status}


async def sink_server(port_file: str) -> None:
    """A trivial aiohttp server that reads and discards request bodies (runs until killed)."""
    from aiohttp import web

    async def sink(request: web.Request) -> web.Response:
        n = 0
        while chunk := await request.content.read(1 << 20):
            n += len(chunk)
        return web.json_response({"_id": "0" * 24, "received": n})

    app = web.Application(client_max_size=1 << 40)
    app.router.add_post("/{tail:.*}", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    Path(port_file + ".tmp").write_text(str(port))
    Path(port_file + ".tmp").rename(port_file)
    await asyncio.Event().wait()


# -- parent side -------------------------------------------------------------------------

_TARGETS = {
    "official-file": "sdk_upload:official_file",
    "official-bytes": "sdk_upload:official_bytes",
    "aioembed-path": "sdk_upload:aioembed_path",
    "raw-aiohttp": "sdk_upload:raw_aiohttp",
}


class _Sink:
    def __init__(self, tmp: Path) -> None:
        import subprocess
        import sys

        self._port_file = tmp / "sink.port"
        self._port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import asyncio, sys; from benchmarks.sdk_upload import sink_server; "
                    "asyncio.run(sink_server(sys.argv[1]))"
                ),
                str(self._port_file),
            ],
            cwd=Path(__file__).resolve().parent.parent,
        )
        deadline = time.monotonic() + 30
        while not self._port_file.exists() or not self._port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the sink server did not start")
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{self._port_file.read_text()}/v1.3"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


SINK = "@sink"


def _plan(size: int, first: bool, reps: int) -> list[tuple[str, int]]:
    """(client, repetitions) for one size. Against the sink: every client at the first
    size (the SDKs as fractions of the physical limit), only raw aiohttp after that.
    ``official-bytes`` above 1 GB runs once: a minute per run, and its memory (3x the
    file) is the same every time."""
    plan = [(c, 1 if c == "official-bytes" and size > GB else reps) for c in CLIENTS]
    plan += [(c + SINK, n) for c, n in plan if first or c == "raw-aiohttp"]
    return plan


def run(*, quick: bool, reps: int, big: bool) -> dict[str, Any]:
    """Returns ``{"sizes": {size: {client: [runs]}}, "markdown": str, "skipped": [...]}``;
    a client name ending ``@sink`` ran against the discard sink, not the server."""
    import psutil  # type: ignore[import-untyped]

    sizes = [16 * MB] if quick else [1 * GB] + ([4 * GB] if big else [])
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aioembed-bench-upload-") as tmp_name:
        tmp = Path(tmp_name)
        # The server keeps a received file on disk until it has answered.
        for size in list(sizes):
            if free_bytes(tmp) < size * 2 + GB:
                sizes.remove(size)
                skipped.append(f"{_label(size)} upload: not enough free disk in {tmp}")
        sink = _Sink(tmp)
        try:
            with Server(tmp / "server", workers=1, max_upload_bytes=max(sizes) + 64 * MB) as server:
                for i, size in enumerate(sizes):
                    path = sparse_file(tmp / f"sparse-{size // MB}MB.mp4", size)
                    plan = _plan(size, i == 0, reps)
                    # the bytes held by the caller plus the copies httpx makes (measured: ~2x)
                    if psutil.virtual_memory().available < 3.5 * size + 2 * GB:
                        plan = [(c, n) for c, n in plan if not c.startswith("official-bytes")]
                        skipped.append(
                            f"{_label(size)} official-bytes: needs ~{3.5 * size / GB:.0f} GB of "
                            "free memory"
                        )
                    per: dict[str, list[dict[str, Any]]] = {c: [] for c, _ in plan}
                    args = {"api_key": server.api_key, "path": str(path)}
                    # Untimed: warm the page cache, the server's upload path and its probe worker.
                    if not quick:
                        run_child(_TARGETS["raw-aiohttp"], args | {"base_url": server.base_url})
                    for rep in range(reps):
                        for client, n in plan:
                            if rep >= n:
                                continue
                            name = client.removesuffix(SINK)
                            base = sink.base_url if client.endswith(SINK) else server.base_url
                            r = run_child(_TARGETS[name], args | {"base_url": base})
                            if not _is_expected(r.get("status")):
                                raise RuntimeError(f"upload {client}: unexpected answer {r}")
                            r["throughput"] = size / r["upload_s"]
                            per[client].append(r)
                            log(
                                f"upload {_label(size)} rep {rep + 1}/{n} {client}: "
                                f"{r['upload_s']:.2f} s, {r['throughput'] / MB:.0f} MB/s, "
                                f"peak RSS growth {r['peak_growth'] / MB:.0f} MB"
                            )
                    results[size] = per
                    path.unlink()
        finally:
            sink.stop()
    upload_md, ceiling_md = _markdown(results)
    return {
        "sizes": {str(k): v for k, v in results.items()},
        "markdown": upload_md,
        "ceiling_markdown": ceiling_md,
        "skipped": skipped,
    }


def _label(size: int) -> str:
    return f"{size / GB:g} GB" if size >= GB else f"{size // MB} MB"


def _runs(runs: list[dict[str, Any]]) -> str:
    return " / ".join(f"{r['throughput'] / MB:.0f}" for r in runs)


def _markdown(results: dict[int, dict[str, list[dict[str, Any]]]]) -> tuple[str, str]:
    """(section 2, section 5)."""
    out = [
        "## 2. Big upload\n",
        (
            "A sparse file (zeros) to `POST /embed/tasks` of the server (upload cap raised); it "
            "streams the body to disk, hashes it, probes it and answers `400 video_file_broken`. "
            "Time = the create call until that answer (the upload plus the same probe for every "
            "client). Each run in a fresh process; median over the runs listed. "
            "`official-bytes` is given `path.read_bytes()`: its RSS growth includes those bytes "
            "(its time does not include reading them). `raw-aiohttp` is a bare aiohttp POST of the "
            "same form (the open file) with no SDK: the most this server takes on this machine. "
            "One untimed upload warms the server first (not in --quick).\n"
        ),
    ]
    ceiling_rows = []
    for size, per in results.items():
        server_clients = [c for c in per if not c.endswith(SINK)]
        ceiling = med(per["raw-aiohttp"], "throughput")
        aio = med(per["aioembed-path"], "throughput")
        rows = []
        for client in server_clients:
            runs = per[client]
            tp = med(runs, "throughput")
            growth = med(runs, "peak_growth")
            held = med(runs, "held_bytes") if client == "official-bytes" else 0.0
            rows.append(
                [
                    client,
                    f"{med(runs, 'upload_s'):.2f} s",
                    f"{tp / MB:.0f} MB/s",
                    _runs(runs),
                    f"{ratio(tp, ceiling):.2f}",
                    "-" if client == "aioembed-path" else f"{ratio(aio, tp):.2f}x",
                    fmt_mb(growth)
                    + (f" ({fmt_mb(growth - held)} beyond the bytes)" if held else ""),
                    f"{med(runs, 'cpu_s'):.2f} s",
                ]
            )
        out.append(f"### {_label(size)} to the server\n")
        out.append(
            table(
                [
                    "client",
                    "time",
                    "throughput",
                    "runs (MB/s)",
                    "fraction of raw-aiohttp",
                    "aioembed / this (throughput)",
                    "client peak RSS growth",
                    "client CPU",
                ],
                rows,
            )
        )
        out.append("")
        sink_ceiling = med(per["raw-aiohttp" + SINK], "throughput")
        for client in [c for c in per if c.endswith(SINK)]:
            runs = per[client]
            tp = med(runs, "throughput")
            ceiling_rows.append(
                [
                    _label(size),
                    client.removesuffix(SINK),
                    f"{tp / MB:.0f} MB/s",
                    _runs(runs),
                    f"{ratio(tp, sink_ceiling):.2f}",
                    f"{med(runs, 'cpu_s'):.2f} s",
                    fmt_mb(med(runs, "peak_growth")),
                ]
            )
        ceiling_rows.append(
            [
                _label(size),
                "(raw-aiohttp to the server)",
                f"{ceiling / MB:.0f} MB/s",
                _runs(per["raw-aiohttp"]),
                f"{ratio(ceiling, sink_ceiling):.2f}",
                "",
                "",
            ]
        )
    ceiling_out = ["## 5. Loopback ceiling\n"]
    ceiling_out.append(
        "The same uploads to a trivial aiohttp handler in its own process that reads and "
        "discards the body (no disk, no hashing, no probe): the physical limit of an "
        "aiohttp-to-aiohttp upload over loopback on this machine, with each SDK as a fraction "
        "of the bare aiohttp POST. The last row of each size shows how much of that limit the "
        "real server leaves.\n"
    )
    ceiling_out.append(
        table(
            [
                "size",
                "client (to the discard sink)",
                "throughput",
                "runs (MB/s)",
                "fraction of raw-aiohttp",
                "client CPU",
                "client peak RSS growth",
            ],
            ceiling_rows,
        )
    )
    ceiling_out.append("")
    return "\n".join(out), "\n".join(ceiling_out)


def render(result: dict[str, Any]) -> tuple[str, str]:
    """Sections 2 and 5 again from the raw numbers (``python -m benchmarks --render``)."""
    return _markdown({int(k): v for k, v in result["sizes"].items()})


def summary(result: dict[str, Any]) -> list[str]:
    lines = []
    for size_text, per in result["sizes"].items():
        aio = per["aioembed-path"]
        parts = [
            f"upload {_label(int(size_text))}: aioembed {med(aio, 'throughput') / MB:.0f} MB/s"
        ]
        for k in ("official-file", "official-bytes"):
            if per.get(k):
                parts.append(
                    f"{fmt_x(ratio(med(aio, 'throughput'), med(per[k], 'throughput')))} {k} "
                    f"(peak RSS growth {fmt_mb(med(per[k], 'peak_growth'))})"
                )
        parts.append(f"aioembed peak RSS growth {fmt_mb(med(aio, 'peak_growth'))}")
        lines.append(", ".join(parts))
    return lines
