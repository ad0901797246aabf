"""From an accepted task to ``ready`` or ``failed``: the consumers of the task queue.

The store is the source of truth: a task is queued when it is created and, on
start-up, every task still ``processing`` is queued again (in creation order).
One consumer per worker claims a task from the :class:`~._queue.TaskQueue`
(a lease, kept alive while the task runs), runs the engine in a worker process
and commits the result (vectors and status in one transaction). A crash of the
server mid-task therefore loses nothing: the task is simply run again after the
restart, and an expired lease (a stalled consumer) is reclaimed and run again.

A ``video_url`` task is downloaded first, beside the workers (a slow URL must
not hold a worker slot), in one of its key's fetch slots (the ``UrlGate``),
into the :class:`~._media.MediaStore`, then queued again. A v2 task whose
source is an ``asset_id`` reads the asset's file where the asset service keeps
it (no copy; the asset cannot be deleted while the task is ``processing``).
When the stored URL is redacted (it carried credentials), the URL as given
lives only in the gate's memory until the task ends; after a restart such a
task cannot be fetched and fails, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from .._params import MODELS
from .._retry import Backoff
from ..errors import APIStatusError, ErrorCode
from ._config import ServerConfig
from ._fenced import fenced_store
from ._media import MediaStore
from ._media_errors import task_message
from ._queue import Lease, LeaseLost, TaskQueue
from ._ratelimit import Limiter
from ._redact import is_redacted
from ._service import AssetMedia, UrlGate
from ._store import SegmentRecord, Store, TaskRecord
from ._v2_engine import V2Bounds, V2TaskJob, asset_of
from ._workers import (
    JobError,
    VideoJob,
    WorkerDied,
    WorkerPool,
    WorkerStartError,
    decoder_threads,
    describe_exit,
)

__all__ = ["Dispatcher"]

log = logging.getLogger("aioembed.server")

#: Seconds before a task is run again after the store failed under it (disk full),
#: doubling with each failure of the same task up to the cap.
RETRY_DELAY = 1.0
RETRY_DELAY_MAX = 30.0
#: Redelivery after a store failure: the shared backoff rule, no jitter (one server).
_REDELIVERY = Backoff(RETRY_DELAY, RETRY_DELAY_MAX, jitter=0.0)
#: How long a task with an ``asset_id`` source waits for the assets to start (seconds).
ASSETS_WAIT = 30.0


class Dispatcher:
    """Runs queued tasks on ``pool``, one consumer per worker."""

    def __init__(
        self,
        *,
        store: Store,
        queue: TaskQueue,
        media: MediaStore,
        pool: WorkerPool,
        config: ServerConfig,
        scratch: Path,
        urls: UrlGate,
        media_budget: Limiter | None = None,
    ) -> None:
        """``media_budget``: the per-key media-seconds bucket, charged here for a task
        whose duration was unknown at create (a URL input) once the worker reports it."""
        self.store = store
        self.queue = queue
        self.media = media
        self.pool = pool
        self.config = config
        self.scratch = scratch
        self.urls = urls
        self.media_budget = media_budget
        #: The store when it ends tasks and releases their leases in one transaction.
        self._fenced = fenced_store(store, queue)
        self._tasks: set[asyncio.Task[None]] = set()
        #: URL downloads in flight, beside the worker slots, by task id.
        self._fetching: dict[str, asyncio.Task[None]] = {}
        #: Latest (clips_done, clips_total) of running tasks, fresher than the store's.
        self.progress: dict[str, tuple[int, int]] = {}
        self.running: dict[str, float] = {}
        self.completed = 0
        self.failed = 0
        self._failures: dict[str, int] = {}
        self._assets: AssetMedia | None = None
        self._assets_ready = asyncio.Event()

    async def _asset_media(self, asset_id: str) -> AssetMedia:
        """The assets, once the server started them (a worker host never has any)."""
        try:
            await asyncio.wait_for(self._assets_ready.wait(), ASSETS_WAIT)
        except TimeoutError:
            raise _MediaMissing(f"The asset {asset_id} cannot be read by this worker.") from None
        assert self._assets is not None
        return self._assets

    def use_assets(self, assets: AssetMedia) -> None:
        """Where ``asset_id`` sources are read (the assets start after the dispatcher)."""
        self._assets = assets
        self._assets_ready.set()

    async def start(self, resume: list[str], *, consume: bool = True) -> None:
        """Queue ``resume`` again; with ``consume``, run a consumer per worker slot and
        the reclaim sweep (operator-mode replicas leave both to ``aioembed worker``)."""
        for task_id in resume:
            await self.queue.submit(task_id)
        if not consume:
            return
        loop = asyncio.get_running_loop()
        for i in range(len(self.pool.slots)):
            self._tasks.add(loop.create_task(self._consume(), name=f"aioembed-dispatch-{i}"))
        self._tasks.add(loop.create_task(self._reclaim(), name="aioembed-reclaim"))

    async def close(self) -> None:
        tasks = [*self._tasks, *self._fetching.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._fetching.clear()

    async def _reclaim(self) -> None:
        while True:
            await asyncio.sleep(self.config.task_lease / 2)
            try:
                n = await self.queue.reclaim_expired()
            except Exception:  # a shared queue's database away: try again next round
                log.exception("reclaiming expired leases failed")
                continue
            if n:
                log.warning("%d task lease(s) expired; the tasks are queued again", n)

    async def _claim(self) -> Lease:
        """The next task's lease; a queue that fails (its database restarting) is asked
        again after the shared backoff, so a consumer outlives the outage."""
        failures = 0
        while True:
            try:
                lease = await self.queue.claim(lease=self.config.task_lease)
            except Exception:
                failures += 1
                delay = _REDELIVERY.base(failures)
                log.exception("claiming a task failed; trying again in %g s", delay)
                await asyncio.sleep(delay)
                continue
            if lease is not None:  # claim without ``wait`` blocks until it has one
                return lease

    async def _consume(self) -> None:
        while True:
            lease = await self._claim()
            keeper = asyncio.get_running_loop().create_task(self._keep(lease))
            try:
                released = await self._process(lease)
            except asyncio.CancelledError:
                keeper.cancel()
                raise
            except LeaseLost:
                # Fenced: another consumer holds the task now; this result was not written.
                log.warning("task %s: lease lost to another consumer", lease.task_id)
                keeper.cancel()
            except Exception:
                # The store failed (disk full?): the task stays ``processing``. Run it
                # again later rather than leave it stuck until a restart; attempts
                # that got as far as the worker count towards ``max_attempts``.
                delay = self._retry_delay(lease.task_id)
                log.exception(
                    "task %s could not be processed; retrying in %g s", lease.task_id, delay
                )
                await self._release(keeper, lease, retry_in=delay)
            else:
                self._failures.pop(lease.task_id, None)
                if released:  # the store released the lease with the result
                    keeper.cancel()
                else:
                    await self._release(keeper, lease, retry_in=None)

    async def _keep(self, lease: Lease) -> Lease:
        """Renew ``lease`` until cancelled; returns the latest one."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.config.task_lease / 3)
                try:
                    lease = await self.queue.heartbeat(lease, extend=self.config.task_lease)
                except LeaseLost:
                    raise
                except Exception:  # the next beat may get through before the lease ends
                    log.warning("task %s: heartbeat failed", lease.task_id, exc_info=True)
        return lease

    async def _release(
        self, keeper: asyncio.Task[Lease], lease: Lease, *, retry_in: float | None
    ) -> None:
        keeper.cancel()
        try:
            lease = await keeper
            if retry_in is None:
                await self.queue.complete(lease)
            else:
                await self.queue.fail(lease, retry_in=retry_in)
        except LeaseLost:
            log.warning("task %s: lease lost to another consumer", lease.task_id)
        except Exception:  # the queue is away: the lease expires and the sweep requeues
            log.exception("task %s: releasing its lease failed", lease.task_id)

    def _retry_delay(self, task_id: str) -> float:
        failures = self._failures[task_id] = self._failures.get(task_id, 0) + 1
        return _REDELIVERY.base(failures)

    async def stats(self) -> dict[str, Any]:
        counts = await self.queue.counts()
        return {
            "queued": counts["queued"],
            "running": len(self.running),
            "fetching": len(self._fetching),
            "completed": self.completed,
            "failed": self.failed,
            "retrying": counts["delayed"],
        }

    async def _process(self, lease: Lease) -> bool:
        """Run the leased task; True when the store released the lease with its end
        (a :class:`~._fenced.FencedStore`); raises ``LeaseLost`` when the fence refused."""
        task_id = lease.task_id
        rec = await self.store.get_task(task_id)
        if rec is None or rec.status != "processing":
            return False
        if rec.input_url is not None and not await self._has_media(task_id):
            # Downloads run beside the workers, not in a worker's slot: a slow URL holds
            # a fetch slot of its key, and the task is queued again once fetched.
            if task_id not in self._fetching:
                await self._start_fetch(rec)
            return False
        attempts = await self.store.start_attempt(task_id)
        if attempts > self.config.max_attempts:
            return await self._finish_failed(
                task_id,
                ErrorCode.INTERNAL_ERROR,
                f"The task was abandoned after {attempts - 1} interrupted attempts.",
                lease=lease,
            )
        self.running[task_id] = time.time()
        try:
            result = await self._embed(rec)
        except JobError as e:
            return await self._finish_failed(task_id, e.code, task_message(e), lease=lease)
        except WorkerStartError as e:  # a set-up error (the message names the fix)
            return await self._finish_failed(task_id, e.code, e.message, lease=lease)
        except _MediaMissing as e:
            return await self._finish_failed(
                task_id, ErrorCode.INTERNAL_ERROR, str(e), lease=lease
            )
        except WorkerDied as e:
            return await self._finish_failed(
                task_id,
                ErrorCode.WORKER_CRASHED,
                "The worker process embedding this task exited unexpectedly "
                f"({describe_exit(e.exitcode)}).",
                lease=lease,
            )
        except TimeoutError:
            return await self._finish_failed(
                task_id,
                ErrorCode.PROCESSING_TIMEOUT,
                f"Embedding took longer than the server's limit of {self.config.task_timeout:g} s.",
                lease=lease,
            )
        else:
            segments = [SegmentRecord(*s) for s in result["segments"]]
            usage = result.get("usage")
            meta = json.dumps({"usage": usage}) if usage is not None else None
            if self._fenced is not None:
                await self._fenced.finish_ready_fenced(
                    lease, segments, duration=result["duration"], result_meta=meta
                )
            else:
                await self.store.finish_ready(
                    task_id, segments, duration=result["duration"], result_meta=meta
                )
            self.completed += 1
            self.urls.forget(task_id)
            await self.media.drop(task_id)
            return self._fenced is not None
        finally:
            self.progress.pop(task_id, None)
            self.running.pop(task_id, None)

    async def _embed(self, rec: TaskRecord) -> Any:
        """Run the engine on the task's media (a URL input was fetched before)."""
        asset_id = asset_of(rec.spec)
        source = self.media.local(rec.id)
        if asset_id is not None:
            source = (await self._asset_media(asset_id)).local(asset_id)
        async with source as media:
            if media is None:
                what = "uploaded video" if asset_id is None else f"file of asset {asset_id}"
                raise _MediaMissing(f"The {what} is missing from the server.")
            job = self._job(rec, media)
            on_event = _ProgressWriter(self, rec)
            return await self.pool.run(job, on_event=on_event, timeout=self.config.task_timeout)

    def _job(self, rec: TaskRecord, media: Path) -> VideoJob | V2TaskJob:
        if rec.spec is not None:
            c = self.config
            bounds = V2Bounds(c.media_limits, decoder_threads(c), c.max_image_pixels)
            return V2TaskJob(str(media), rec.spec, c.backend, bounds)
        return VideoJob(
            path=str(media),
            model_name=rec.model_name,
            clip_length=rec.clip_length,
            scopes=rec.scopes,
            options=rec.options or MODELS[rec.model_name].video_options,
            limits=self.config.media_limits,
            start=rec.start,
            end=rec.end,
            backend=self.config.backend,
            threads=decoder_threads(self.config),
        )

    async def _finish_failed(
        self, task_id: str, code: ErrorCode | str, message: str, *, lease: Lease | None = None
    ) -> bool:
        """Fail the task (fenced by ``lease`` when the store can); True when the lease
        was released with it."""
        fenced = self._fenced if lease is not None else None
        if fenced is not None and lease is not None:
            await fenced.finish_failed_fenced(lease, code, message)
        else:
            await self.store.finish_failed(task_id, code, message)
        self.failed += 1
        self.urls.forget(task_id)
        await self.media.drop(task_id)
        return fenced is not None

    async def _has_media(self, task_id: str) -> bool:
        async with self.media.local(task_id) as media:
            return media is not None

    async def _start_fetch(self, rec: TaskRecord) -> None:
        assert rec.input_url is not None
        url = self.urls.given(rec.id, rec.input_url)
        if is_redacted(url):
            await self._finish_failed(
                rec.id,
                ErrorCode.INTERNAL_ERROR,
                "The server restarted before video_url was fetched, and the credentials in "
                "it are not stored: create the task again.",
            )
            return
        task = asyncio.get_running_loop().create_task(
            self._fetch_stage(rec.id, rec.owner, url, v2=rec.api == "v2"),
            name=f"aioembed-fetch-{rec.id}",
        )
        self._fetching[rec.id] = task
        task.add_done_callback(lambda _: self._fetching.pop(rec.id, None))

    async def _fetch_stage(self, task_id: str, owner: str, url: str, *, v2: bool) -> None:
        """Download the task's ``video_url`` (in one of its key's fetch slots), then queue
        it for a worker; a download error fails the task once, with its code."""
        try:
            try:
                tmp = self.scratch / f"{secrets.token_hex(12)}.part"
                fetched = await self.urls.fetch(url, tmp, "video_url", owner=owner)
                await self.media.adopt(task_id, fetched.path)
            except APIStatusError as e:
                message = e.message
                if v2:  # the v2 contract's wording for a source that could not be read
                    message = f"failed to fetch or materialize source media ({e.message})"
                await self._finish_failed(task_id, e.code, message)
                return
            await self.queue.submit(task_id)
        except Exception:
            delay = self._retry_delay(task_id)
            log.exception("task %s could not be fetched; retrying in %g s", task_id, delay)
            await self.queue.submit(task_id, delay=delay)


class _MediaMissing(Exception):
    """An upload task whose media is gone (removed by hand, or a lost disk)."""


class _ProgressWriter:
    """A worker's events -> live progress, and the store (throttled: one write per
    ``progress_interval`` seconds, plus the last)."""

    def __init__(self, dispatcher: Dispatcher, rec: TaskRecord) -> None:
        self.d = dispatcher
        self.task_id = rec.id
        self.last_write = 0.0
        #: Charged to the media budget when the duration arrives: a duration unknown at
        #: create (a re-run finds the one stored by the first attempt and charges nothing).
        self.charge = rec if rec.duration is None else None

    async def __call__(self, msg: tuple[Any, ...]) -> None:
        store = self.d.store
        if msg[0] == "progress":
            done, total = int(msg[1]), int(msg[2])
            self.d.progress[self.task_id] = (done, total)
            now = time.monotonic()
            if now - self.last_write >= self.d.config.progress_interval or done >= total:
                self.last_write = now
                await store.set_progress(self.task_id, done, total)
        elif msg[0] == "meta":
            await store.set_duration(self.task_id, float(msg[1]))
            if self.charge is not None and self.d.media_budget is not None:
                # Accepted already: charged whatever the bucket holds (it may go into
                # debt, and the key's next creates wait for it to refill).
                rec, self.charge = self.charge, None
                end = float(msg[1]) if rec.end is None else min(rec.end, float(msg[1]))
                await self.d.media_budget.adjust(rec.owner, -max(0.0, end - rec.start))
