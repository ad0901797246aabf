"""From an accepted task to ``ready`` or ``failed``: the queue between the store and the workers.

The store is the queue's source of truth: a task id is queued when it is
created and, on start-up, every task still ``processing`` is queued again (in
creation order). One consumer per worker takes ids, fetches a URL input when
needed, runs the engine in a worker process and commits the result (vectors and
status in one transaction). A crash of the server mid-task therefore loses
nothing: the task is simply run again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .._params import MODELS
from ..errors import APIStatusError, ErrorCode
from ._config import ServerConfig
from ._store import SegmentRecord, Store
from ._urlfetch import UrlPolicy, fetch_to_file
from ._workers import JobError, VideoJob, WorkerDied, WorkerPool, describe_exit

__all__ = ["Dispatcher"]

log = logging.getLogger("aioembed.server")

#: Seconds before a task is run again after the store failed under it (disk full),
#: doubling with each failure of the same task up to the cap.
RETRY_DELAY = 1.0
RETRY_DELAY_MAX = 30.0


class Dispatcher:
    """Runs queued tasks on ``pool``, one consumer per worker."""

    def __init__(
        self,
        *,
        store: Store,
        pool: WorkerPool,
        config: ServerConfig,
        media_dir: Path,
        tmp_dir: Path,
        session: Callable[[], aiohttp.ClientSession],
        policy: UrlPolicy,
    ) -> None:
        self.store = store
        self.pool = pool
        self.config = config
        self.media_dir = media_dir
        self.tmp_dir = tmp_dir
        self._session = session
        self._policy = policy
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._consumers: set[asyncio.Task[None]] = set()
        #: Latest (clips_done, clips_total) of running tasks, fresher than the store's.
        self.progress: dict[str, tuple[int, int]] = {}
        self.running: dict[str, float] = {}
        self.completed = 0
        self.failed = 0
        self._failures: dict[str, int] = {}
        self._retries: set[asyncio.TimerHandle] = set()

    def media_path(self, task_id: str) -> Path:
        return self.media_dir / task_id

    def submit(self, task_id: str) -> None:
        self._queue.put_nowait(task_id)

    def queued(self) -> int:
        return self._queue.qsize()

    def start(self, resume: list[str]) -> None:
        for task_id in resume:
            self.submit(task_id)
        for i in range(len(self.pool.slots)):
            task = asyncio.get_running_loop().create_task(
                self._consume(), name=f"aioembed-dispatch-{i}"
            )
            self._consumers.add(task)

    async def close(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers.clear()

    async def _consume(self) -> None:
        while True:
            task_id = await self._queue.get()
            try:
                await self._process(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store failed (disk full?): the task stays ``processing``. Run it
                # again later rather than leave it stuck until a restart; attempts
                # that got as far as the worker count towards ``max_attempts``.
                delay = self._retry_later(task_id)
                log.exception("task %s could not be processed; retrying in %g s", task_id, delay)
            else:
                self._failures.pop(task_id, None)

    def _retry_later(self, task_id: str) -> float:
        failures = self._failures[task_id] = self._failures.get(task_id, 0) + 1
        delay = min(RETRY_DELAY_MAX, RETRY_DELAY * 2.0 ** (failures - 1))

        def resubmit() -> None:
            self._retries.discard(handle)
            self.submit(task_id)

        handle = asyncio.get_running_loop().call_later(delay, resubmit)
        self._retries.add(handle)
        return delay

    async def _process(self, task_id: str) -> None:
        rec = await self.store.get_task(task_id)
        if rec is None or rec.status != "processing":
            return
        attempts = await self.store.start_attempt(task_id)
        media = self.media_path(task_id)
        if attempts > self.config.max_attempts:
            await self._finish_failed(
                task_id,
                ErrorCode.INTERNAL_ERROR,
                f"The task was abandoned after {attempts - 1} interrupted attempts.",
            )
            return
        self.running[task_id] = time.time()
        try:
            if not media.exists():
                if rec.input_url is None:
                    await self._finish_failed(
                        task_id,
                        ErrorCode.INTERNAL_ERROR,
                        "The uploaded video is missing from the server.",
                    )
                    return
                await self._fetch(rec.input_url, media)
            job = VideoJob(
                path=str(media),
                model_name=rec.model_name,
                clip_length=rec.clip_length,
                scopes=rec.scopes,
                options=rec.options or MODELS[rec.model_name].video_options,
                limits=self.config.media_limits,
                start=rec.start,
                end=rec.end,
                backend=self.config.backend,
            )
            last_write = 0.0

            async def on_event(msg: tuple[Any, ...]) -> None:
                nonlocal last_write
                if msg[0] == "progress":
                    done, total = int(msg[1]), int(msg[2])
                    self.progress[task_id] = (done, total)
                    now = time.monotonic()
                    if now - last_write >= self.config.progress_interval or done >= total:
                        last_write = now
                        await self.store.set_progress(task_id, done, total)
                elif msg[0] == "meta":
                    await self.store.set_duration(task_id, float(msg[1]))

            result = await self.pool.run(job, on_event=on_event, timeout=self.config.task_timeout)
        except JobError as e:
            await self._finish_failed(task_id, e.code, e.message)
        except APIStatusError as e:  # a URL input that could not be fetched
            await self._finish_failed(task_id, e.code, e.message)
        except WorkerDied as e:
            await self._finish_failed(
                task_id,
                ErrorCode.WORKER_CRASHED,
                "The worker process embedding this task exited unexpectedly "
                f"({describe_exit(e.exitcode)}).",
            )
        except TimeoutError:
            await self._finish_failed(
                task_id,
                ErrorCode.PROCESSING_TIMEOUT,
                f"Embedding took longer than the server's limit of {self.config.task_timeout:g} s.",
            )
        else:
            segments = [SegmentRecord(*s) for s in result["segments"]]
            await self.store.finish_ready(task_id, segments, duration=result["duration"])
            self.completed += 1
            self._drop_media(task_id)
        finally:
            self.progress.pop(task_id, None)
            self.running.pop(task_id, None)

    async def _finish_failed(self, task_id: str, code: ErrorCode | str, message: str) -> None:
        await self.store.finish_failed(task_id, code, message)
        self.failed += 1
        self._drop_media(task_id)

    def _drop_media(self, task_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.media_path(task_id))

    async def _fetch(self, url: str, media: Path) -> None:
        tmp = self.tmp_dir / f"{secrets.token_hex(12)}.part"
        await fetch_to_file(
            self._session(),
            url,
            tmp,
            param="video_url",
            policy=self._policy,
            max_bytes=self.config.url_max_bytes,
            timeout=self.config.url_fetch_timeout,
            max_redirects=self.config.url_max_redirects,
        )
        os.replace(tmp, media)

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self.queued(),
            "running": len(self.running),
            "completed": self.completed,
            "failed": self.failed,
            "retrying": len(self._retries),
        }
