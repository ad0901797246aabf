"""Issue 13: a large sparse file uploaded as an asset, aioembed vs the official SDK.

    python -m benchmarks.assets_upload --size-mb 4096

Every client runs in a fresh process (:func:`~._harness.run_child`); the
asset server is one ``python -m aioembed.server`` process, the sink another:

* ``aioembed``: ``upload_multipart`` (what ``client.assets.upload`` runs above
  the direct limit): parts read at their offsets, 4 in flight.
* ``official``: ``AsyncTwelveLabs.multipart_upload.upload_file(path)``: it first
  copies the file into ``<stem>_chunks/`` beside it, then uploads.
* the loopback ceiling, same run, same bytes: raw ``aiohttp`` PUTs of the file
  to a trivial aiohttp sink that reads and discards (no disk, no hashing, no
  signing, no reports): one PUT of the whole file, and the file as 5 MiB parts
  with 4 in flight (aioembed's shape). The faster is the ceiling; each client's
  throughput is shown as a fraction of it.

Measured: wall time, throughput, client peak RSS growth, peak temporary disk
the client used (sampled size of its chunk directory and resume pointer), and
requests by route (server metrics). Resume: an aioembed client that SIGKILLs
itself once 50 % of the bytes are acknowledged, then a rerun; the parts the
server received whole twice (killed run's + rerun's part PUTs - total chunks)
are the bytes re-sent. Each upload's asset is probed ``failed`` (the file is
zeros): only the upload is timed; the benchmark waits for that and deletes the
asset before the next client runs, so the server's joins never overlap a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from ._harness import (
    API_KEY,
    MB,
    ROOT,
    Server,
    count_delta,
    fmt_mb,
    log,
    run_child,
    sparse_file,
    table,
)

#: aioembed's part size and concurrency (the server's default chunk size).
PART = 5 * MB
IN_FLIGHT = 4


def _du(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        if root.is_file():
            total += root.stat().st_blocks * 512
        elif root.is_dir():
            for p in root.rglob("*"):
                try:
                    total += p.stat().st_blocks * 512
                except OSError:
                    pass
    return total


class _DiskSampler(threading.Thread):
    def __init__(self, paths: list[Path]) -> None:
        super().__init__(daemon=True)
        self.paths, self.peak, self._halt = paths, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.peak = max(self.peak, _du(self.paths))

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# -- children (each in a fresh process) ---------------------------------------------------


async def aioembed_upload(
    base_url: str, api_key: str, path: str, state_dir: str, kill_at: float = 0.0
) -> dict[str, Any]:
    from aioembed import AsyncClient
    from aioembed.client._multipart import upload_multipart

    source = Path(path)
    size = source.stat().st_size
    disk = _DiskSampler([Path(state_dir), source.parent / f"{source.stem}_chunks"])
    disk.start()

    def progress(done: int, total: int | None) -> None:
        if kill_at and done >= kill_at * size:
            os.kill(os.getpid(), signal.SIGKILL)

    t = time.perf_counter()
    async with AsyncClient(api_key, base_url=base_url) as client:
        asset_id = await upload_multipart(
            client._transport,
            source,
            filename=source.name,
            file_type="video",
            user_metadata=None,
            part_concurrency=IN_FLIGHT,
            progress=progress,
            state_dir=Path(state_dir),
        )
    return {"upload_s": time.perf_counter() - t, "temp_disk": disk.stop(), "asset_id": asset_id}


async def official_upload(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    import httpx
    from twelvelabs import AsyncTwelveLabs

    source = Path(path)
    disk = _DiskSampler([source.parent / f"{source.stem}_chunks"])
    disk.start()
    t = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        sdk = AsyncTwelveLabs(api_key=api_key, base_url=base_url, httpx_client=http)
        result = await sdk.multipart_upload.upload_file(str(source))
    return {
        "upload_s": time.perf_counter() - t,
        "temp_disk": disk.stop(),
        "asset_id": result.asset_id,
    }


async def raw_put(sink_url: str, path: str, parts: bool) -> dict[str, Any]:
    """The plainest aiohttp upload of ``path`` to the sink: one PUT of the open file, or
    ``PART``-sized ranges (read with ``os.pread`` off the loop) with ``IN_FLIGHT`` in flight."""
    import aiohttp

    size = Path(path).stat().st_size
    async with aiohttp.ClientSession() as session:
        t = time.perf_counter()
        if not parts:
            with open(path, "rb") as f:  # noqa: ASYNC230 (aiohttp reads it off the loop)
                async with session.put(f"{sink_url}/whole", data=f) as resp:
                    received = (await resp.json())["received"]
            return {"upload_s": time.perf_counter() - t, "received": received}
        fd = os.open(path, os.O_RDONLY)
        queue = list(range(0, size, PART))
        total = 0

        async def worker() -> None:
            nonlocal total
            loop = asyncio.get_running_loop()
            while queue:
                offset = queue.pop(0)
                data = await loop.run_in_executor(None, os.pread, fd, PART, offset)
                async with session.put(f"{sink_url}/part/{offset}", data=data) as resp:
                    total += (await resp.json())["received"]

        try:
            await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        finally:
            os.close(fd)
        return {"upload_s": time.perf_counter() - t, "received": total}


async def sink_server(port_file: str) -> None:
    """A trivial aiohttp server that reads and discards request bodies (runs until killed)."""
    from aiohttp import web

    async def sink(request: web.Request) -> web.Response:
        n = 0
        while chunk := await request.content.read(1 << 20):
            n += len(chunk)
        return web.json_response({"received": n})

    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("*", "/{tail:.*}", sink)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    Path(port_file + ".tmp").write_text(str(runner.addresses[0][1]))
    Path(port_file + ".tmp").rename(port_file)
    await asyncio.Event().wait()


# -- parent side ---------------------------------------------------------------------------


class _Sink:
    def __init__(self, tmp: Path) -> None:
        port_file = tmp / "sink.port"
        code = (
            "import asyncio, sys; from benchmarks.assets_upload import sink_server; "
            "asyncio.run(sink_server(sys.argv[1]))"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(port_file)], cwd=ROOT)
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the sink server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _killed_child(kwargs: dict[str, Any]) -> None:
    code = (
        "import asyncio, json, sys; from benchmarks.assets_upload import aioembed_upload; "
        "asyncio.run(aioembed_upload(**json.loads(sys.argv[1])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)], cwd=ROOT, check=False, timeout=1800
    )
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def _settle_and_delete(server: Server, asset_id: str, timeout: float = 1800.0) -> str:
    """Wait until the server has joined and probed the asset, then delete it (frees its
    disk, and keeps the join out of the next client's time). Returns its final status."""
    deadline = time.monotonic() + timeout
    while (status := server.get(f"assets/{asset_id}")["status"]) == "processing":
        if time.monotonic() > deadline:
            raise RuntimeError(f"asset {asset_id} still processing after {timeout} s")
        time.sleep(0.5)
    req = urllib.request.Request(
        f"{server.base_url}/assets/{asset_id}",
        method="DELETE",
        headers={"x-api-key": server.api_key},
    )
    with urllib.request.urlopen(req, timeout=60):
        pass
    return str(status)


def _puts(requests: dict[str, int]) -> int:
    return sum(n for k, n in requests.items() if k.startswith("PUT"))


def _clients(server: Server, root: Path, size: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name in ("aioembed", "official"):
        src = root / name
        src.mkdir()
        path = sparse_file(src / "big.mp4", size)
        kw: dict[str, Any] = {"base_url": server.base_url, "api_key": server.api_key}
        kw["path"] = str(path)
        if name == "aioembed":
            kw["state_dir"] = str(src / "state")
        before = server.counts()
        r = run_child(f"assets_upload:{name}_upload", kw)
        r["requests"] = count_delta(before, server.counts())
        r["asset_status"] = _settle_and_delete(server, r["asset_id"])
        results[name] = r
        log(f"{name}: {r['upload_s']:.1f} s, asset {r['asset_status']}")
        path.unlink()
    return results


def _resume(server: Server, root: Path, size: int) -> dict[str, Any]:
    src = root / "resume"
    src.mkdir()
    path = sparse_file(src / "big.mp4", size)
    kw = {
        "base_url": server.base_url,
        "api_key": server.api_key,
        "path": str(path),
        "state_dir": str(src / "state"),
    }
    before = server.counts()
    _killed_child({**kw, "kill_at": 0.5})
    killed = count_delta(before, server.counts())
    middle = server.counts()
    r = run_child("assets_upload:aioembed_upload", kw)
    rerun = count_delta(middle, server.counts())
    chunks = -(-size // PART)
    twice = _puts(killed) + _puts(rerun) - chunks
    r.update(
        killed_requests=killed,
        requests=rerun,
        killed_part_puts=_puts(killed),
        part_puts=_puts(rerun),
        chunks=chunks,
        parts_sent_twice=twice,
        bytes_resent=twice * PART,
        asset_status=_settle_and_delete(server, r["asset_id"]),
    )
    path.unlink()
    return r


def _ceiling(root: Path, size: int) -> dict[str, dict[str, Any]]:
    path = sparse_file(root / "ceiling.mp4", size)
    sink = _Sink(root)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name, parts in (("raw aiohttp, one PUT", False), ("raw aiohttp, 5 MiB parts", True)):
            kw = {"sink_url": sink.url, "path": str(path), "parts": parts}
            r = run_child("assets_upload:raw_put", kw)
            assert r["received"] == size, r
            out[name] = r
            log(f"{name}: {r['upload_s']:.1f} s")
    finally:
        sink.stop()
        path.unlink()
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.assets_upload")
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--dir", default=None, help="where the files go (default: the temp dir)")
    args = p.parse_args()
    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="aioembed-assets-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        ceiling = _ceiling(root, size)
        # As an operator key the bench key's metrics count every request, the part PUTs
        # too (they carry no key: the signed URL is the credential).
        with Server(root / "server", extra=["--admin-key", API_KEY]) as server:
            results = _clients(server, root, size)
            resume = _resume(server, root, size)
    best = min(r["upload_s"] for r in ceiling.values())
    rows = []
    for name, r in [*ceiling.items(), *results.items()]:
        rows.append(
            [
                name,
                f"{r['upload_s']:.1f}",
                f"{size / MB / r['upload_s']:.0f}",
                f"{best / r['upload_s']:.2f}",
                fmt_mb(r["peak_growth"]),
                fmt_mb(r["temp_disk"]) if "temp_disk" in r else "",
                r["requests"]["total"] if "requests" in r else "",
            ]
        )
    headers = ["client", "wall s", "MB/s", "of ceiling", "peak RSS growth", "temp disk", "requests"]
    print(table(headers, rows))
    print(
        f"resume after SIGKILL at 50 %: killed run {resume['killed_part_puts']} part PUTs, "
        f"rerun {resume['part_puts']} of {resume['chunks']} chunks in "
        f"{resume['upload_s']:.1f} s; parts received twice {resume['parts_sent_twice']} "
        f"({fmt_mb(resume['bytes_resent'])} re-sent)"
    )
    print(json.dumps({"ceiling": ceiling, **results, "resume": resume}, indent=1, default=str))


if __name__ == "__main__":
    main()
