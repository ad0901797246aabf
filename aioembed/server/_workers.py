"""Engine work in worker processes, never on the event loop.

A :class:`WorkerPool` owns ``size`` slots; each slot is one child process
running one job at a time, talking over a duplex pipe. Owning the processes
(rather than a ``ProcessPoolExecutor``) is what lets a crash be pinned on the
job that caused it: when a child dies the pipe reads EOF, that job raises
:class:`WorkerDied`, the slot is restarted on next use and every other slot
goes on untouched (an executor would break *all* its pending futures).

Children come from a ``forkserver`` (Linux) that preloads the engine, so a
restart costs a fork rather than a fresh interpreter importing NumPy and PyAV;
elsewhere ``spawn``. Never plain ``fork``: the server process has threads and an
event loop. A child exits by itself when the server dies (``kill -9``
included): a watchdog thread notices its parent changed.

Bounds: a child's memory is capped with ``RLIMIT_DATA`` (set when it starts,
after the worker initialiser): an allocation past it fails inside the job,
which then ends with ``memory_limit_exceeded`` instead of the machine swapping
or the kernel killing a process. Video decoders run with a capped number of
threads, since FFmpeg's default (one per CPU) multiplies decoder memory.
A child left holding more than ``max_rss`` resident bytes after a job (glibc
and FFmpeg keep what an odd file made them allocate), that has run
``max_jobs`` jobs, or that hit its memory cap is replaced once its job's answer
is in: the job is never lost to a recycle, and the slot takes its next job
only when the old process is gone. A job's deadline covers its wait for a free
worker too: past it with none free, :class:`PoolBusyError` (the job never ran).
:func:`worker_pool` builds a pool with these bounds from a ``ServerConfig``.

A child starts by importing the parent's ``__main__`` script again (as
``__mp_main__``; both ``forkserver`` and ``spawn`` do). A script that starts the
server without an ``if __name__ == "__main__":`` guard would so start a second
server in every child: :func:`exit_if_reimported_main` (called by
``create_app``) ends such a child with :data:`EXIT_REIMPORTED_MAIN`, and the pool
answers every job with :class:`WorkerStartError` naming the fix (logged once).

Messages, child -> parent: ``("started",)``, ``("progress", done, total)``,
``("meta", duration)``, then ``("rss", bytes)`` and ``("ok", result)`` or
``("error", code, message[, field])``
(``field`` for an engine :class:`~aioembed.engine.MediaError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any

import attrs

from .._params import MIN_LAST_CLIP, MediaLimits, invalid
from ..errors import ErrorCode, ServerError
from ._config import ServerConfig
from ._v2_engine import V2EmbedJob, V2MediaError, V2TaskJob

__all__ = [
    "AudioJob",
    "ImageJob",
    "JobError",
    "PoolBusyError",
    "ProbeJob",
    "TextJob",
    "VideoJob",
    "WorkerDied",
    "WorkerPool",
    "WorkerStartError",
    "check_offsets",
    "decoder_threads",
    "exit_if_reimported_main",
    "worker_pool",
]

log = logging.getLogger("aioembed.server")

Send = Callable[..., None]
OnEvent = Callable[[tuple[Any, ...]], Awaitable[None] | None]


class JobError(Exception):
    """A job ended with a contract error (``code``, ``message``), e.g. a broken video.

    ``field`` is the engine's :class:`~aioembed.engine.MediaField` for a media error
    (the server maps it to a wire parameter), ``None`` when the message is already
    in the wire's words.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field


class PoolBusyError(TimeoutError):
    """No worker of the pool became free before the job's deadline; the job never ran
    (a ``TimeoutError``, so callers that only know deadlines still catch it)."""

    def __init__(self, pool: str, timeout: float | None) -> None:
        super().__init__(f"no {pool} worker was free within {timeout:g} s")
        self.pool = pool
        self.timeout = timeout


#: Exit status of a child that found itself re-running the server's script (EX_CONFIG).
EXIT_REIMPORTED_MAIN = 78
_PROCESS_PREFIX = "aioembed-"


def exit_if_reimported_main() -> None:
    """End this process if it is a worker child re-running the script that started the
    server (an unguarded ``create_app``/``serve`` call at the script's top level);
    the pool sees :data:`EXIT_REIMPORTED_MAIN` and says what to fix. No-op elsewhere."""
    name = multiprocessing.current_process().name
    if name.startswith(_PROCESS_PREFIX) and "__mp_main__" in sys.modules:
        os._exit(EXIT_REIMPORTED_MAIN)


def _unguarded_main_message() -> str:
    script = getattr(sys.modules.get("__main__"), "__file__", None) or "the main script"
    return (
        f"Worker processes cannot start: each one re-runs {script}, which starts the "
        'server outside an `if __name__ == "__main__":` block; put the create_app()/'
        "serve() call under that guard."
    )


class WorkerStartError(ServerError):
    """The pool's processes cannot start (a set-up error, not the job's fault): ``500
    internal_error`` with the fix in the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.INTERNAL_ERROR)


class WorkerDied(Exception):
    """The worker process running a job exited (crash, signal, OOM kill) before answering."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(f"worker process exited unexpectedly ({describe_exit(exitcode)})")


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def check_offsets(start: float, end: float | None, duration: float) -> float:
    """The effective end offset for a video of ``duration`` seconds.

    Raises :class:`~aioembed.errors.ParameterError` (``parameter_invalid``) when
    the offsets do not fit the video: start at or past the end, an end past the
    duration (a 50 ms tolerance absorbs rounding by clients that probed the
    file themselves), or less than 2 s (the shortest clip) to embed.
    """
    if start >= duration:
        raise invalid(
            "video_start_offset_sec",
            f"video_start_offset_sec should be less than the video duration ({duration:g} s).",
        )
    if end is None:
        end = duration
    elif end > duration + 0.05:
        raise invalid(
            "video_end_offset_sec",
            f"video_end_offset_sec should not exceed the video duration ({duration:g} s).",
        )
    end = min(end, duration)
    if end - start < MIN_LAST_CLIP - 1e-9:
        raise invalid(
            "video_start_offset_sec",
            f"video_start_offset_sec leaves less than {MIN_LAST_CLIP:g} s of video to embed.",
        )
    return end


# -- jobs: small picklable values, run inside the child ----------------------------


def _vector_bytes(vector: Any) -> bytes:
    import numpy as np

    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


@attrs.frozen
class ProbeJob:
    """Probe a file; with ``limits``, also apply the contract's video checks."""

    path: str
    limits: MediaLimits | None = None
    #: Decoder threads (``None``: FFmpeg's choice, one per CPU).
    threads: int | None = None

    def run(self, send: Send) -> dict[str, Any]:
        from ..engine import check_media, probe

        info = probe(self.path, threads=self.threads)
        if self.limits is not None:
            check_media(info, self.limits)
        return {
            name: getattr(info, name)
            for name in ("duration", "width", "height", "fps", "has_video", "has_audio")
        }


@attrs.frozen
class VideoJob:
    """Embed one video task. Result: ``{"duration": float, "segments": [(start, end,
    scope, option, float32 bytes), ...]}``."""

    path: str
    model_name: str
    clip_length: float
    scopes: tuple[str, ...]
    options: tuple[str, ...]
    limits: MediaLimits
    start: float = 0.0
    end: float | None = None
    backend: str | None = None
    threads: int | None = None

    def run(self, send: Send) -> dict[str, Any]:
        from ..engine import check_media, embed_video, probe
        from ..errors import APIStatusError

        info = probe(self.path, threads=self.threads)
        check_media(info, self.limits)
        send("meta", float(info.duration))
        try:
            end = check_offsets(self.start, self.end, float(info.duration))
        except APIStatusError as e:
            raise JobError(e.code, e.message) from None
        segments = embed_video(
            self.path,
            model_name=self.model_name,
            start=self.start,
            end=end,
            clip_length=self.clip_length,
            scopes=self.scopes,
            options=self.options,
            progress=lambda done, total: send("progress", int(done), int(total)),
            backend=self.backend,
            # A picture size that changes mid-stream is checked too, not only the first.
            limits=self.limits,
            threads=self.threads,
        )
        return {
            "duration": float(info.duration),
            "segments": [
                (float(s.start), float(s.end), str(s.scope), str(s.option), _vector_bytes(s.vector))
                for s in segments
            ],
        }


@attrs.frozen
class TextJob:
    text: str
    model_name: str
    backend: str | None = None

    def run(self, send: Send) -> bytes:
        from ..engine import embed_text

        return _vector_bytes(
            embed_text(self.text, model_name=self.model_name, backend=self.backend)
        )


@attrs.frozen
class ImageJob:
    path: str
    model_name: str
    backend: str | None = None
    #: Largest picture (width x height), read from the header before decoding.
    max_pixels: int | None = None

    def run(self, send: Send) -> bytes:
        from ..engine import embed_image

        return _vector_bytes(
            embed_image(
                self.path,
                model_name=self.model_name,
                backend=self.backend,
                max_pixels=self.max_pixels,
            )
        )


@attrs.frozen
class AudioJob:
    """Result: ``[(start, end, float32 bytes), ...]``."""

    path: str
    model_name: str
    start_offset: float = 0.0
    backend: str | None = None
    #: Longest audio accepted (seconds), checked before any segment is planned.
    max_duration: float | None = None

    def run(self, send: Send) -> list[tuple[float, float, bytes]]:
        from ..engine import embed_audio

        segments = embed_audio(
            self.path,
            model_name=self.model_name,
            start_offset=self.start_offset,
            backend=self.backend,
            max_duration=self.max_duration,
        )
        return [(float(s.start), float(s.end), _vector_bytes(s.vector)) for s in segments]


Job = ProbeJob | VideoJob | TextJob | ImageJob | AudioJob | V2TaskJob | V2EmbedJob


# -- the child ----------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    # The pipe alone would not stop a child busy in a long job after the server
    # was killed: poll for reparenting instead (a forkserver child sees the
    # forkserver, which itself exits when the server dies).
    while True:
        time.sleep(0.25)
        if os.getppid() != parent:
            os._exit(70)


def run_init(spec: str | None) -> None:
    """Import and call ``"module:function"`` (a worker initialiser); no-op for ``None``."""
    if not spec:
        return
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ValueError(f"worker_init should look like 'module:function', got {spec!r}")
    func = getattr(importlib.import_module(module_name), func_name)
    func()


def limit_memory(limit: int | None) -> None:
    """Cap this process's data segment and private writable mappings (``RLIMIT_DATA``)
    at ``limit`` bytes: past it an allocation fails (``MemoryError``, FFmpeg's
    ``ENOMEM``) instead of growing. Never above an existing hard limit."""
    if limit is None:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def current_rss() -> int:
    """This process's resident memory now, in bytes (its peak where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _out_of_memory(exc: BaseException) -> bool:
    """``exc``, or what it was raised from or while handling, is a failed allocation
    (the engine turns a decoder's ``ENOMEM`` into a media error ``from None``)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, MemoryError):
            return True
        seen.add(id(e))
        todo += [e.__cause__, e.__context__]
    return False


def _failure(exc: Exception, memory_limit: int | None) -> tuple[Any, ...]:
    """The ``("error", code, message[, field])`` message for a job that raised ``exc``."""
    from ..engine import MediaError

    if memory_limit is not None and _out_of_memory(exc):
        return (
            "error",
            ErrorCode.MEMORY_LIMIT_EXCEEDED.value,
            "Processing this input needs more memory than the server allows one worker "
            f"({memory_limit / 2**20:.0f} MiB).",
        )
    if isinstance(exc, (JobError, V2MediaError)):
        return ("error", exc.code, exc.message)
    if isinstance(exc, MediaError):
        return ("error", str(exc.code), str(exc.message), str(exc.field))
    # An engine bug: report it, keep the worker.
    traceback.print_exception(exc, file=sys.stderr)
    return ("error", "internal_error", f"The engine failed: {type(exc).__name__}: {exc}"[:2000])


def worker_main(
    conn: multiprocessing.connection.Connection,
    init: str | None = None,
    memory_limit: int | None = None,
) -> None:
    """Entry point of a worker process: run jobs from ``conn`` until told to stop.

    ``memory_limit`` (bytes) caps the process from after ``init`` on (:func:`limit_memory`).
    """
    # Ctrl-C in a terminal reaches the whole process group: let the server decide.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_watch_parent, args=(os.getppid(),), name="aioembed-watchdog", daemon=True
    ).start()
    send_lock = threading.Lock()

    def send(*msg: Any) -> None:
        with send_lock:
            try:
                conn.send(msg)
            except OSError:
                # The server is gone (killed): nobody will read this job's result, and
                # a broken pipe is not an engine failure worth a traceback. Leave now.
                os._exit(70)

    run_init(init)
    limit_memory(memory_limit)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        send("started")
        try:
            reply: tuple[Any, ...] = ("ok", job.run(send))
        except Exception as e:  # noqa: BLE001 - bad media, or an engine bug: report, go on
            reply = _failure(e, memory_limit)
        # Measured once the job's frames and arrays are gone: what the process keeps.
        send("rss", current_rss())
        send(*reply)
        del reply, job


# -- the parent side ----------------------------------------------------------------

_PRELOAD = ["aioembed.server._workers", "aioembed.engine", "numpy", "av"]


def default_context() -> BaseContext:
    if sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        # Only takes effect before the forkserver starts; harmless afterwards.
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class _Died(Exception):
    def __init__(self, exitcode: int | None, started: bool) -> None:
        self.exitcode = exitcode
        self.started = started


class _Slot:
    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: multiprocessing.process.BaseProcess | None = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.job: Job | None = None
        self.jobs = 0  # run by the current process
        self.rss = 0  # resident bytes the process reported after its last job
        #: Replace the process before the next job (see :meth:`_worn_out`).
        self.retire = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        parent, child = self.pool.ctx.Pipe(duplex=True)
        process = self.pool.ctx.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child, self.pool.init, self.pool.memory_limit),
            name=f"{_PROCESS_PREFIX}{self.pool.name}-{self.index}",
            daemon=True,
        )
        process.start()
        child.close()
        self.process, self.conn = process, parent
        self.jobs = self.rss = 0
        self.retire = False
        self.pool.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            with contextlib.suppress(OSError):
                self.process.kill()

    async def reap(self) -> int | None:
        """Wait for a killed or dead child and forget it; returns its exit code."""
        process, conn = self.process, self.conn
        self.process = self.conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool.io, process.join, 10.0)
        if process.exitcode is None:
            process.kill()
            await loop.run_in_executor(self.pool.io, process.join, 10.0)
        code = process.exitcode
        with contextlib.suppress(ValueError):
            process.close()
        return code

    async def run(self, job: Job, on_event: OnEvent | None) -> Any:
        for attempt in (1, 2):
            if not self.alive():
                if self.process is not None:
                    await self.reap()
                # Off the loop: the very first start launches the forkserver and
                # waits for it to import the engine (about a second).
                await asyncio.get_running_loop().run_in_executor(self.pool.io, self.start)
            self.job = job
            try:
                msg = await self._exchange(job, on_event)
            except _Died as died:
                if died.exitcode == EXIT_REIMPORTED_MAIN:
                    raise self.pool.cannot_start(_unguarded_main_message()) from None
                self.pool.crashes += 1
                # Died before taking the job (killed while idle): the job is
                # not to blame, run it once more on a fresh process.
                if not died.started and attempt == 1:
                    continue
                raise WorkerDied(died.exitcode) from None
            finally:
                self.job = None
            self.jobs += 1
            self.retire = self._worn_out(msg)
            if msg[0] == "error":
                raise JobError(str(msg[1]), str(msg[2]), msg[3] if len(msg) > 3 else None)
            return msg[1]
        raise AssertionError("unreachable")  # pragma: no cover

    def _worn_out(self, final: tuple[Any, ...]) -> bool:
        """Replace the process after this job: it hit its memory cap (its heap may be
        fragmented, a library left half-way), holds too much memory, or has run its
        share of jobs."""
        pool = self.pool
        return (
            (final[0] == "error" and final[1] == ErrorCode.MEMORY_LIMIT_EXCEEDED)
            or (pool.max_rss is not None and self.rss > pool.max_rss)
            or (pool.max_jobs is not None and self.jobs >= pool.max_jobs)
        )

    async def _exchange(self, job: Job, on_event: OnEvent | None) -> tuple[Any, ...]:
        """Send ``job``, relay events, return the final ``ok``/``error`` message."""
        loop = asyncio.get_running_loop()
        conn = self.conn
        assert conn is not None
        started = False
        try:
            await loop.run_in_executor(self.pool.io, conn.send, job)
            while True:
                msg: tuple[Any, ...] = await loop.run_in_executor(self.pool.io, conn.recv)
                if msg[0] in ("ok", "error"):
                    return msg
                if msg[0] == "started":
                    started = True
                elif msg[0] == "rss":
                    self.rss = int(msg[1])
                elif on_event is not None:
                    res = on_event(msg)
                    if res is not None:
                        await res
        except (EOFError, OSError):
            self.kill()
            raise _Died(await self.reap(), started) from None
        except BaseException:
            # Cancelled or timed out mid-job: the child may be anywhere in it,
            # so it cannot be reused. Killing it also ends the pending read in
            # the I/O thread.
            self.kill()
            await asyncio.shield(self.reap())
            raise

    async def stop(self) -> None:
        if self.conn is not None and self.alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
        process = self.process
        if process is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.pool.io, process.join, 2.0)
            self.kill()
        await self.reap()


class WorkerPool:
    """``size`` worker processes, started on first use (or by :meth:`prestart`).

    :meth:`run` waits for a free worker, runs ``job`` there and returns its
    result; raises :class:`JobError` for a contract error reported by the job,
    :class:`WorkerDied` when the process died under it, ``TimeoutError`` after
    ``timeout`` seconds (the worker is killed) and :class:`PoolBusyError` when
    no worker was free within them. ``on_event`` gets progress/meta messages as
    they come.

    ``memory_limit`` (bytes) caps each process (``RLIMIT_DATA``; ``None``: no cap);
    a process is replaced after a job that leaves it over ``max_rss`` resident
    bytes or that makes ``max_jobs`` (``None``: no such bound).
    """

    def __init__(
        self,
        size: int,
        *,
        name: str = "worker",
        ctx: BaseContext | None = None,
        init: str | None = None,
        memory_limit: int | None = None,
        max_rss: int | None = None,
        max_jobs: int | None = None,
    ) -> None:
        self.name = name
        self.init = init
        self.memory_limit = memory_limit
        self.max_rss = max_rss
        self.max_jobs = max_jobs
        self.recycled = 0
        self._retiring: set[asyncio.Task[None]] = set()
        self._cannot_start: WorkerStartError | None = None
        self.ctx = ctx or default_context()
        self.io = ThreadPoolExecutor(size * 2 + 1, thread_name_prefix=f"aioembed-{name}-io")
        self.slots = [_Slot(self, i) for i in range(size)]
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        for slot in self.slots:
            self._idle.put_nowait(slot)
        self.starts = 0
        self.crashes = 0
        self._closed = False

    def prestart(self) -> None:
        for slot in self.slots:
            if not slot.alive():
                slot.start()

    async def run(
        self, job: Job, *, on_event: OnEvent | None = None, timeout: float | None = None
    ) -> Any:
        if self._closed:
            raise RuntimeError("worker pool is closed")
        if self._cannot_start is not None:
            raise self._cannot_start
        slot: _Slot | None = None
        try:
            # One deadline for the wait and the work: a job queued behind slow
            # ones does not wait without end.
            async with asyncio.timeout(timeout):
                slot = await self._idle.get()
                return await slot.run(job, on_event)
        except TimeoutError:
            if slot is None:
                raise PoolBusyError(self.name, timeout) from None
            raise
        finally:
            if slot is not None:
                self._release(slot)

    def cannot_start(self, message: str) -> WorkerStartError:
        """Remember (and log, once) that this pool's processes cannot start: every job
        from now on fails at once with ``message`` instead of starting another."""
        if self._cannot_start is None:
            log.error("%s", message)
            self._cannot_start = WorkerStartError(message)
        return self._cannot_start

    def _release(self, slot: _Slot) -> None:
        """Free ``slot``; a worn-out process is stopped first, beside the caller (its
        job's answer is in hand, so no deadline or cancellation can lose it)."""
        if not slot.retire:
            self._idle.put_nowait(slot)
            return

        async def recycle() -> None:
            try:
                await slot.stop()
            finally:
                slot.retire = False
                self._idle.put_nowait(slot)

        self.recycled += 1
        task = asyncio.get_running_loop().create_task(
            recycle(), name=f"aioembed-recycle-{self.name}"
        )
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def stats(self) -> dict[str, Any]:
        return {
            "size": len(self.slots),
            "busy": sum(1 for s in self.slots if s.job is not None),
            "alive": sum(1 for s in self.slots if s.alive()),
            "pids": [s.pid for s in self.slots if s.alive()],
            "starts": self.starts,
            "crashes": self.crashes,
            "recycled": self.recycled,
            "recycling": len(self._retiring),
            # Per slot: resident bytes its process reported after its last job.
            "rss_after_job": [s.rss for s in self.slots],
        }

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(slot.stop() for slot in self.slots), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.io.shutdown)


def worker_pool(config: ServerConfig, size: int, *, name: str = "worker") -> WorkerPool:
    """A pool of ``size`` processes with ``config``'s worker bounds (initialiser, memory
    cap, recycling): the server's video, sync and probe pools, and any other host running jobs."""
    return WorkerPool(
        size,
        name=name,
        init=config.worker_init,
        memory_limit=config.worker_memory_limit,
        max_rss=config.worker_max_rss,
        max_jobs=config.worker_max_jobs,
    )


def decoder_threads(config: ServerConfig) -> int | None:
    """Threads per video decoder for jobs: ``config.decoder_threads``, ``0`` meaning
    FFmpeg's choice (``None``)."""
    return config.decoder_threads or None
