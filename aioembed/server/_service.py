"""What the server does, without HTTP: create, view, page, retrieve and embed_sync.

Handlers parse a request, call one method here and render its result, so a new
API version (or a transport other than aiohttp) reuses the whole domain. The
service works over seams, each a ``Protocol`` with a conformance suite:

* :class:`~._store.Store`: durable task state;
* :class:`~._queue.TaskQueue`: which task runs next (the dispatcher consumes it);
* :class:`~._media.MediaStore`: task inputs until they are embedded;
* :class:`AssetMedia`: assets read as v2 media sources (``asset_id``);

plus a URL gate (the SSRF-checked fetcher), the sync and probe worker pools (apart,
so a create's probe never waits behind ``POST /embed`` work) and a view of
live progress. It raises :mod:`aioembed.errors` exceptions; the adapter renders them.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from .._params import MODELS, TaskParams, invalid
from ..errors import APIStatusError, ErrorCode, NotFoundError, ParameterError
from ._config import ServerConfig
from ._media import MediaStore
from ._media_errors import sync_embed_error
from ._queue import TaskQueue
from ._ratelimit import Limiter
from ._redact import redact_url
from ._store import NewTask, SegmentRecord, Store, TaskRecord, new_task_id
from ._workers import (
    AudioJob,
    ImageJob,
    JobError,
    PoolBusyError,
    ProbeJob,
    TextJob,
    WorkerDied,
    check_offsets,
    decoder_threads,
)

__all__ = [
    "AssetMedia",
    "Created",
    "LocalFile",
    "Page",
    "SyncResult",
    "TaskService",
    "TaskView",
    "UrlGate",
]

T = TypeVar("T")
#: Seconds of media a sync audio/video embedding takes from the budget before it runs.
SYNC_DEPOSIT = 1.0
_TASK_ID = re.compile(r"[0-9a-f]{24}")
_ALL_OPTIONS = tuple(dict.fromkeys(o for m in MODELS.values() for o in m.video_options))
Progress = tuple[int, int]


class LocalFile(Protocol):
    """A received or fetched file on local disk."""

    @property
    def path(self) -> Path: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def filename(self) -> str | None: ...


class UrlGate(Protocol):
    """URL inputs: refused destinations (SSRF) and bounded downloads."""

    async def check(self, url: str, param: str) -> None:
        """Raise ``ParameterError`` naming ``param`` for a URL the server will not fetch."""
        ...

    async def fetch(self, url: str, dest: Path, param: str, *, owner: str = "") -> LocalFile:
        """Download ``url`` to ``dest`` (removed again on failure), in one of ``owner``'s
        fetch slots."""
        ...

    def remember(self, task_id: str, url: str) -> None:
        """Keep ``url`` as given (it carries credentials) for the task's download, in memory
        only: the store holds the redacted form."""
        ...

    def given(self, task_id: str, stored: str) -> str:
        """The URL to fetch for a task: the one remembered, else ``stored``."""
        ...

    def forget(self, task_id: str) -> None: ...


class AssetMedia(Protocol):
    """Assets as task inputs (the asset service)."""

    def local(self, asset_id: str) -> AbstractAsyncContextManager[Path | None]:
        """The asset's file for the block, ``None`` if it has none."""
        ...


class JobRunner(Protocol):
    async def run(self, job: Any, *, on_event: Any = None, timeout: float | None = None) -> Any: ...


@attrs.frozen
class Created:
    id: str
    replayed: bool = False


@attrs.frozen
class TaskView:
    """A task as shown: its record, the freshest progress, the options asked for,
    and its segments when it was retrieved ``ready``."""

    record: TaskRecord
    progress: Progress | None = None
    options: tuple[str, ...] | None = None
    segments: list[SegmentRecord] | None = None


@attrs.frozen
class Page:
    tasks: list[TaskView]
    page: int
    limit: int
    total: int


@attrs.frozen
class SyncResult:
    """``embed_sync``'s vectors as ``(start, end, float32 bytes)``; offsets only for audio."""

    model_name: str
    source: str
    vectors: list[tuple[float | None, float | None, bytes]]
    metadata: dict[str, Any] | None


class TaskService:
    """The domain behind every API version's handlers."""

    def __init__(
        self,
        *,
        config: ServerConfig,
        store: Store,
        queue: TaskQueue,
        media: MediaStore,
        urls: UrlGate,
        sync_pool: JobRunner,
        scratch: Path,
        progress: Callable[[str], Progress | None],
        probe_pool: JobRunner | None = None,
        media_budget: Limiter | None = None,
    ) -> None:
        """``probe_pool`` runs create-time probes (default: ``sync_pool``);
        ``media_budget`` is the per-key bucket of media seconds (``None``: unlimited)."""
        self.config = config
        self.store = store
        self.queue = queue
        self.media = media
        self.urls = urls
        self.sync_pool = sync_pool
        self.probe_pool = probe_pool if probe_pool is not None else sync_pool
        self.scratch = scratch
        self._progress = progress
        self.media_budget = media_budget

    # -- create ---------------------------------------------------------------------

    async def replayed(self, owner: str, key: str | None) -> str | None:
        """The task an earlier create with this idempotency key made, if any."""
        if key is None:
            return None
        return await self.store.find_idempotent(owner, key, max_age=self.config.idempotency_ttl)

    async def create(
        self,
        owner: str,
        params: TaskParams,
        upload: LocalFile | None,
        *,
        idempotency_key: str | None = None,
    ) -> Created:
        """Check what the form cannot (URL destination, the video itself), keep the
        media, store the task durably and queue it. A URL wins over a file."""
        duration: float | None = None
        if params.video_url is not None:
            await self.urls.check(params.video_url, "video_url")
            upload = None
        elif upload is not None and self.config.probe_on_create:
            duration = await self._probe(upload.path)
            check_offsets(params.start, params.end, duration)
        task = _new_task(owner, params, upload, duration)
        if params.video_url is not None and task.input_url != params.video_url:
            self.urls.remember(task.id, params.video_url)
        return await self.create_stored(
            task, upload.path if upload is not None else None, idempotency_key=idempotency_key
        )

    async def create_stored(
        self, task: NewTask, media: Path | None, *, idempotency_key: str | None = None
    ) -> Created:
        """Keep ``media`` (moved into the media store), store ``task`` durably and queue
        it; an API version's adapter has checked everything before."""
        seconds = _media_seconds(task)
        await self.debit_media(task.owner, seconds)
        try:
            if media is not None:
                await self.media.adopt(task.id, media)
            try:
                stored = await self.store.create_task(task, idempotency_key=idempotency_key)
            except BaseException:
                await self.media.drop(task.id)
                raise
        except BaseException:
            await self.refund_media(task.owner, seconds)
            raise
        if stored != task.id:  # lost a race with the same idempotency key
            await self.media.drop(task.id)
            await self.refund_media(task.owner, seconds)
            return Created(stored, replayed=True)
        await self.queue.submit(task.id)
        return Created(task.id)

    async def debit_media(self, owner: str, seconds: float) -> None:
        """Take ``seconds`` of media from ``owner``'s budget; ``RateLimitError`` (429)
        when the budget cannot cover them now. Called after every other check, so a
        create refused for another reason costs nothing."""
        if self.media_budget is not None and seconds > 0:
            decision = await self.media_budget.debit(owner, seconds)
            if not decision.allowed:
                raise decision.error()

    async def refund_media(self, owner: str, seconds: float) -> None:
        """Give back a :meth:`debit_media` for work that will not be done."""
        if self.media_budget is not None and seconds > 0:
            await self.media_budget.adjust(owner, seconds)

    async def metered(
        self, owner: str, run: Callable[[], Awaitable[T]], seconds_of: Callable[[T], float]
    ) -> T:
        """A sync audio/video embedding, whose duration is known only once it ran:
        refused (429) up front when less than :data:`SYNC_DEPOSIT` seconds of the
        budget are left, then charged ``seconds_of(result)``; a failure costs nothing."""
        if self.media_budget is None:
            return await run()
        await self.debit_media(owner, SYNC_DEPOSIT)
        try:
            result = await run()
        except BaseException:
            await self.media_budget.adjust(owner, SYNC_DEPOSIT)
            raise
        await self.media_budget.adjust(owner, SYNC_DEPOSIT - seconds_of(result))
        return result

    async def _probe(self, path: Path) -> float:
        """Probe and check a video in a probe worker; ``ParameterError`` with the contract
        code, ``503 server_busy`` when no probe worker was free within ``probe_timeout``."""
        timeout = self.config.probe_timeout
        try:
            job = ProbeJob(str(path), self.config.media_limits, decoder_threads(self.config))
            info = await self.probe_pool.run(job, timeout=timeout)
        except JobError as e:
            raise ParameterError(e.message, code=e.code) from None
        except PoolBusyError:
            raise busy_error("probe", timeout) from None
        except (WorkerDied, TimeoutError):
            raise ParameterError(
                "The video file is broken or not a supported video: probing it failed.",
                code=ErrorCode.VIDEO_FILE_BROKEN,
            ) from None
        return float(info["duration"])

    # -- view, retrieve, page -------------------------------------------------------

    async def _record(self, owner: str, task_id: str, api: str = "v1") -> TaskRecord:
        rec = None
        if _TASK_ID.fullmatch(task_id):
            rec = await self.store.get_task(task_id, owner=owner)
        if rec is None or rec.api != api:  # each API version sees its own tasks only
            shown = task_id if len(task_id) <= 40 else task_id[:37] + "..."
            raise NotFoundError(
                f"The embedding task {shown!r} does not exist.", code=ErrorCode.RESOURCE_NOT_EXIST
            )
        return rec

    async def record(self, owner: str, task_id: str, *, api: str) -> TaskRecord:
        """The stored task of API version ``api``; ``NotFoundError`` for any other."""
        return await self._record(owner, task_id, api)

    async def view(self, owner: str, task_id: str) -> TaskView:
        """Status and metadata; ``NotFoundError`` for an unknown or another key's task."""
        rec = await self._record(owner, task_id)
        return TaskView(rec, progress=self._progress(rec.id))

    async def retrieve(self, owner: str, task_id: str, wanted: Sequence[str]) -> TaskView:
        """The task with the segments of the ``wanted`` options (all when empty) once ready."""
        for option in wanted:
            if option not in _ALL_OPTIONS:
                raise invalid(
                    "embedding_option",
                    f"embedding_option should be one of {', '.join(_ALL_OPTIONS)}; "
                    f"{option[:40]!r} is not supported.",
                )
        rec = await self._record(owner, task_id)
        model_options = MODELS[rec.model_name].video_options
        for option in wanted:
            if option not in model_options:
                raise invalid(
                    "embedding_option",
                    f"embedding_option should be one of {', '.join(model_options)} "
                    f"for {rec.model_name}.",
                )
        options = tuple(o for o in rec.options if o in wanted) if wanted else rec.options
        if rec.status != "ready":
            return TaskView(rec, progress=self._progress(rec.id), options=options)
        segments = await self.store.get_segments(rec.id, options=options)
        return TaskView(rec, options=options, segments=segments)

    async def page(
        self,
        owner: str,
        *,
        page: int,
        limit: int,
        statuses: Sequence[str] = (),
        created_from: float | None = None,
        created_to: float | None = None,
    ) -> Page:
        """One page of the owner's tasks, newest first."""
        recs, total = await self.store.list_tasks(
            owner,
            statuses=statuses,
            created_from=created_from,
            created_to=created_to,
            offset=(page - 1) * limit,
            limit=limit,
        )
        views = [TaskView(r, progress=self._progress(r.id)) for r in recs]
        return Page(views, page=page, limit=limit, total=total)

    # -- embed_sync -----------------------------------------------------------------

    async def embed_sync(
        self,
        model_name: str,
        source: str,
        *,
        text: str | None = None,
        upload: LocalFile | None = None,
        url: str | None = None,
        offset: float = 0.0,
        owner: str = "",
    ) -> SyncResult:
        """Text, image or audio (``source`` names the input field) to vectors, now."""
        if source == "text":
            if not (text or "").strip():
                raise invalid("text", "text should not be empty.")
            result = await self._run_sync(
                TextJob(text or "", model_name, self.config.backend), source
            )
            return SyncResult(model_name, source, [(None, None, result)], None)
        async with self._input(source, upload, url, owner) as local:
            job: Any
            if source.startswith("image"):
                job = ImageJob(
                    str(local.path), model_name, self.config.backend, self.config.max_image_pixels
                )
            else:
                limit = self.config.media_limits.max_duration
                job = AudioJob(str(local.path), model_name, offset, self.config.backend, limit)
            if source.startswith("image"):
                result = await self._run_sync(job, source)
            else:
                result = await self.metered(
                    owner, lambda: self._run_sync(job, source), _audio_seconds
                )
        metadata = (
            {"input_url": redact_url(url)}
            if url is not None
            else {"input_filename": local.filename}
        )
        if source.startswith("image"):
            return SyncResult(model_name, source, [(None, None, result)], metadata)
        return SyncResult(model_name, source, [(s, e, v) for s, e, v in result], metadata)

    @contextlib.asynccontextmanager
    async def _input(
        self, source: str, upload: LocalFile | None, url: str | None, owner: str
    ) -> Any:
        if upload is not None:
            yield upload
            return
        dest = self.scratch / f"{secrets.token_hex(12)}.part"
        fetched = await self.urls.fetch(url or "", dest, source, owner=owner)
        try:
            yield fetched
        finally:
            with contextlib.suppress(FileNotFoundError):
                fetched.path.unlink()

    async def _run_sync(self, job: Any, source: str) -> Any:
        timeout = self.config.sync_timeout
        try:
            return await self.sync_pool.run(job, timeout=timeout)
        except JobError as e:
            if e.code == ErrorCode.INTERNAL_ERROR:
                raise
            raise sync_embed_error(e, source) from None
        except PoolBusyError:
            raise busy_error("sync", timeout) from None
        except TimeoutError:
            raise APIStatusError(
                f"Processing {source} took longer than the server's limit of {timeout:g} s.",
                code=ErrorCode.PROCESSING_TIMEOUT,
                status=504,
            ) from None
        except WorkerDied:
            raise invalid(source, f"{source} could not be processed.") from None


def busy_error(pool: str, timeout: float) -> APIStatusError:
    """Every worker of ``pool`` stayed busy past the deadline: ``503``, try again later."""
    return APIStatusError(
        f"The server is busy: no {pool} worker was free within {timeout:g} s. Try again later.",
        code=ErrorCode.SERVER_BUSY,
        status=503,
        headers={"Retry-After": "5"},
    )


def _audio_seconds(segments: list[tuple[float, float, bytes]]) -> float:
    """The audio a sync embedding covered: first segment start to last segment end."""
    return max((e for _, e, _ in segments), default=0.0) - min(
        (s for s, _, _ in segments), default=0.0
    )


def _media_seconds(task: NewTask) -> float:
    """The media a task will embed: its duration clipped by its offsets; 0 while the
    duration is unknown (a URL input, probing off), which is not debited."""
    if task.duration is None:
        return 0.0
    end = task.duration if task.end is None else min(task.end, task.duration)
    return max(0.0, end - task.start)


def _new_task(
    owner: str, params: TaskParams, upload: LocalFile | None, duration: float | None
) -> NewTask:
    return NewTask(
        id=new_task_id(),
        owner=owner,
        model_name=params.model_name,
        clip_length=params.clip_length,
        scopes=params.scopes,
        options=MODELS[params.model_name].video_options,
        start=params.start,
        end=params.end,
        input_url=redact_url(params.video_url) if params.video_url else None,
        input_filename=upload.filename if upload is not None else None,
        duration=duration,
        media_sha256=upload.sha256 if upload is not None else None,
        media_size=upload.size if upload is not None else None,
    )
