"""Shared machinery for the SDK benchmarks (``benchmarks/sdk_*.py``).

* :class:`Server` runs ``python -m aioembed.server`` as a subprocess on loopback
  and reads its request counters (``GET /v1.3/metrics``), so the counts are the
  server's own and no client code runs in the server's process.
* :func:`run_child` runs one client measurement in a fresh interpreter
  (``python -m benchmarks._harness MODULE:FUNC JSON``): clean RSS, clean CPU
  counters, nothing cached from an earlier run. The child reports wall time
  (``time.perf_counter``), CPU seconds of the whole process (``getrusage``:
  every thread included) and peak RSS growth (``ru_maxrss`` against the RSS
  just before the measured call, cross-checked by a psutil sampling thread).
* small statistics and Markdown helpers.

Benchmarks never assert on time; nothing here does either.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

API_KEY = "bench-key"
MB = 1024 * 1024
GB = 1024 * MB
_MARK = "@@BENCH@@"
ROOT = Path(__file__).resolve().parent.parent


# -- the server ------------------------------------------------------------------------


class Server:
    """``python -m aioembed.server`` in a subprocess: ``with Server(data_dir, ...) as s``.

    ``s.base_url`` ends with ``/v1.3``; :meth:`counts` is a snapshot of the
    server's request counters (route, method, status) -> n, without the
    ``/metrics`` requests themselves.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 2,
        max_upload_bytes: int | None = None,
        probe_on_create: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        args = [
            sys.executable,
            "-m",
            "aioembed.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--api-key",
            API_KEY,
            "--data-dir",
            str(self.data_dir),
            "--workers",
            str(workers),
            "--prestart-workers",
            "--log-level",
            "WARNING",
        ]
        if max_upload_bytes is not None:
            args += ["--max-upload-bytes", str(max_upload_bytes)]
        if not probe_on_create:
            args.append("--no-probe-on-create")
        self.args = [*args, *extra]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = API_KEY

    def __enter__(self) -> Server:  # noqa: PYI034
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("aioembed serving on "):
                self.base_url = line.split("aioembed serving on ", 1)[1].strip()
                # Keep draining its output so a chatty server never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(seen[-30:]))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get_bytes(self, path: str, timeout: float = 300.0) -> bytes:
        req = urllib.request.Request(
            f"{self.base_url}/{path.lstrip('/')}", headers={"x-api-key": self.api_key}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return bytes(resp.read())

    def get(self, path: str) -> Any:
        return json.loads(self.get_bytes(path))

    def counts(self) -> Counter[tuple[str, str, int]]:
        data = self.get("metrics")
        return Counter(
            {
                (r["route"], r["method"], int(r["status"])): int(r["count"])
                for r in data["requests"]
                if not r["route"].endswith("/metrics")
            }
        )


def count_delta(
    before: Counter[tuple[str, str, int]], after: Counter[tuple[str, str, int]]
) -> dict[str, int]:
    """Requests between two snapshots, by ``"METHOD route"`` (statuses summed) plus ``total``."""
    diff = after - before
    out: Counter[str] = Counter()
    for (route, method, _status), n in diff.items():
        out[f"{method} {route.removeprefix('/v1.3')}"] += n
    result = dict(sorted(out.items()))
    result["total"] = sum(out.values())
    return result


# -- measuring a client in a fresh process -----------------------------------------------


def _rss() -> int:
    import psutil  # type: ignore[import-untyped]

    return int(psutil.Process().memory_info().rss)


def _maxrss() -> int:
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Sampler(threading.Thread):
    """Samples RSS every few milliseconds; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = _rss()
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._halt.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, _rss())
        return self.peak


_STATE: dict[str, Any] = {}


def _growth() -> tuple[int, int]:
    """(peak RSS growth since the call started, psutil-sampled peak growth)."""
    sampled = max(_STATE["sampler"].peak, _rss()) - _STATE["rss"]
    maxrss = _maxrss()
    # ru_maxrss is the exact high-water mark, but only tells us about this call once
    # it rose above the peak reached before it (imports); until then use the samples.
    exact = maxrss - _STATE["rss"] if maxrss > _STATE["maxrss"] else sampled
    return exact, sampled


def checkpoint() -> dict[str, float]:
    """Inside a measured call: seconds and peak RSS growth so far (for a result
    that has an intermediate point, such as "lists of floats" before "NumPy")."""
    return {"s": time.perf_counter() - _STATE["t"], "peak_growth": _growth()[0]}


def measure_call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Call ``fn(**kwargs)`` (a coroutine function runs in a new event loop) and measure it.

    ``fn`` may return a dict of its own numbers (e.g. an upload time that excludes
    reading a file first); they are merged into the result.
    """
    gc.collect()
    rss0 = _rss()
    sampler = _Sampler()
    sampler.start()
    _STATE.update(rss=rss0, maxrss=_maxrss(), sampler=sampler)
    cpu0 = _cpu()
    t0 = _STATE["t"] = time.perf_counter()
    if inspect.iscoroutinefunction(fn):
        extra = asyncio.run(fn(**kwargs))
    else:
        extra = fn(**kwargs)
    wall = time.perf_counter() - t0
    cpu = _cpu() - cpu0
    sampler.stop()
    exact, sampled = _growth()
    result: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_start": rss0,
        "peak_growth": exact,
        "peak_growth_sampled": sampled,
        "peak_rss": rss0 + exact,
    }
    if isinstance(extra, dict):
        result.update(extra)
    return result


def run_child(target: str, kwargs: dict[str, Any], *, timeout: float = 1800.0) -> dict[str, Any]:
    """Run ``benchmarks.<module>:<func>(**kwargs)`` measured in a fresh interpreter."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONTRACEMALLOC", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._harness", target, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return dict(json.loads(line[len(_MARK) :]))
    raise RuntimeError(
        f"benchmark child {target} failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


#: Imported in every child before anything is measured, so neither SDK pays for
#: (or is charged the memory of) imports in its numbers and both start equal.
PRELOAD = (
    "aiohttp",
    "httpx",
    "pydantic",
    "numpy",
    "orjson",
    "twelvelabs",
    "aioembed",
    "aioembed.client",
    "aioembed.errors",
)


def _child_main(argv: Sequence[str]) -> int:
    target, raw = argv[0], argv[1]
    for name in PRELOAD:
        importlib.import_module(name)
    from twelvelabs import AsyncTwelveLabs  # noqa: F401  (its lazy attributes resolved too)

    module_name, func_name = target.split(":")
    module = importlib.import_module(f"benchmarks.{module_name}")
    fn = getattr(module, func_name)
    result = measure_call(fn, json.loads(raw))
    print(_MARK + json.dumps(result), flush=True)
    return 0


# -- statistics and reporting --------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def med(runs: Sequence[dict[str, Any]], key: str) -> float:
    return median(r[key] for r in runs if r.get(key) is not None)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def fmt_mb(n: float) -> str:
    return f"{n / MB:.0f} MB" if abs(n) >= 10 * MB else f"{n / MB:.1f} MB"


def fmt_x(x: float) -> str:
    return f"{x:.2f}x"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    import psutil

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical CPUs "
        f"({len(os.sched_getaffinity(0))} usable)",
        "memory": f"{psutil.virtual_memory().total / GB:.1f} GB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": ", ".join(
            f"{d} {_version(d)}"
            for d in (
                "aioembed",
                "twelvelabs",
                "aiohttp",
                "httpx",
                "pydantic",
                "numpy",
                "orjson",
                "av",
            )
        ),
    }


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    # Run through the importable module, not this ``__main__`` copy, so checkpoint()
    # called by a scenario sees the state measure_call() set.
    from benchmarks._harness import _child_main as main

    sys.exit(main(sys.argv[1:]))
