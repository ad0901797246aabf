"""Issue 13: a large sparse file uploaded as an asset, aioembed vs the official SDK.

    python -m benchmarks.assets_upload --size-mb 1024

Both clients run in fresh processes against one server process (loopback):

* ``aioembed``: ``upload_multipart`` (what ``client.assets.upload`` runs above
  the direct limit): parts read at their offsets, 4 in flight.
* ``official``: ``AsyncTwelveLabs.multipart_upload.upload_file(path)``: it first
  copies the file into ``<stem>_chunks/`` beside it, then uploads.

Measured: wall time, throughput (MB/s; the loopback ceiling is the raw
``aiohttp`` figure of ``sdk_upload`` in the same run when both are run; here the
sink-free figure is reported as is), client peak RSS growth, peak temporary disk
the client used (sampled size of its chunk directory and resume pointer), and
requests by route (server metrics). Resume: an aioembed client that SIGKILLs
itself at 50 % and a rerun; bytes re-sent are the rerun's part PUTs. Both uploads
end with the asset probed ``failed`` (the file is zeros): only the upload is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ._harness import MB, Server, count_delta, fmt_mb, log, run_child, sparse_file, table


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
        await upload_multipart(
            client._transport,
            source,
            filename=source.name,
            file_type="video",
            user_metadata=None,
            part_concurrency=4,
            progress=progress,
            state_dir=Path(state_dir),
        )
    return {"upload_s": time.perf_counter() - t, "temp_disk": disk.stop()}


async def official_upload(base_url: str, api_key: str, path: str) -> dict[str, Any]:
    import httpx
    from twelvelabs import AsyncTwelveLabs

    source = Path(path)
    disk = _DiskSampler([source.parent / f"{source.stem}_chunks"])
    disk.start()
    t = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        sdk = AsyncTwelveLabs(api_key=api_key, base_url=base_url, httpx_client=http)
        await sdk.multipart_upload.upload_file(str(source))
    return {"upload_s": time.perf_counter() - t, "temp_disk": disk.stop()}


def _killed_child(kwargs: dict[str, Any]) -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, json, sys; from benchmarks.assets_upload import aioembed_upload; "
        "asyncio.run(aioembed_upload(**json.loads(sys.argv[1])))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.assets_upload")
    p.add_argument("--size-mb", type=int, default=1024)
    args = p.parse_args()
    size = args.size_mb * MB
    with tempfile.TemporaryDirectory(prefix="aioembed-assets-bench-") as tmp:
        root = Path(tmp)
        rows, results = [], {}
        with Server(root / "server") as server:
            for name in ("aioembed", "official"):
                src = root / name
                src.mkdir()
                path = sparse_file(src / "big.mp4", size)
                before = server.counts()
                if name == "aioembed":
                    r = run_child(
                        "assets_upload:aioembed_upload",
                        {
                            "base_url": server.base_url,
                            "api_key": server.api_key,
                            "path": str(path),
                            "state_dir": str(src / "state"),
                        },
                    )
                else:
                    r = run_child(
                        "assets_upload:official_upload",
                        {"base_url": server.base_url, "api_key": server.api_key, "path": str(path)},
                    )
                r["requests"] = count_delta(before, server.counts())
                results[name] = r
                log(f"{name}: {r['upload_s']:.1f} s")
                rows.append(
                    [
                        name,
                        f"{r['upload_s']:.1f}",
                        f"{size / MB / r['upload_s']:.0f}",
                        fmt_mb(r["peak_growth"]),
                        fmt_mb(r["temp_disk"]),
                        r["requests"]["total"],
                    ]
                )
                path.unlink()
            # Resume: killed at 50 %, then rerun.
            src = root / "resume"
            src.mkdir()
            path = sparse_file(src / "big.mp4", size)
            kw = {
                "base_url": server.base_url,
                "api_key": server.api_key,
                "path": str(path),
                "state_dir": str(src / "state"),
            }
            _killed_child({**kw, "kill_at": 0.5})
            before = server.counts()
            r = run_child("assets_upload:aioembed_upload", kw)
            req = count_delta(before, server.counts())
            puts = sum(n for k, n in req.items() if k.startswith("PUT"))
            results["resume"] = {**r, "requests": req, "part_puts": puts}
        print(table(["client", "wall s", "MB/s", "peak RSS growth", "temp disk", "requests"], rows))
        print(f"resume after SIGKILL at 50 %: {puts} part PUTs on rerun, {r['upload_s']:.1f} s")
        print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
