"""``client.embed.tasks``: the single-task calls plus the batch ones built on them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Sequence
from datetime import datetime

from typing import Any, Literal, overload

from ..contract.v2 import ModelName, V2Task
from ..contract.v2._inputs import Segmentation
from ..models import EmbedTask
from ._batch import (
    BatchInput,
    BatchRun,
    Outcome,
    StatusCallback,
    UploadCallback,
    watch_many,
)
from ._assets import Assets
from ._batch_items import TaskT
from ._batch_api import ApiName, BatchApi, V1Api, V2Api
from ._pacing import Pacer, RateBudget
from ._defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MODEL,
    DEFAULT_SLEEP_INTERVAL,
)
from ._streams import ProducerStream
from ._tasks import Scope, TaskCalls
from ._transport import Transport
from ._v2_tasks import EmbedV2Tasks
from ._v2_watch import V2StatusUpdate
from ._watch import StatusUpdate

__all__ = ["EmbedTasks"]


class EmbedTasks(TaskCalls):
    """Video embedding tasks (``/embed/tasks``): one at a time, or many at once
    (``embed_many`` also runs v2 batches: ``api="v2"``)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        # Stateless over the transport, as every resource.
        self._v2 = EmbedV2Tasks(transport)
        self._assets = Assets(transport)

    @overload
    def embed_many(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        *,
        api: Literal["v1"] = "v1",
        model_name: str | None = None,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[Scope] | None = None,
        embedding_option: Sequence[str] | None = None,
        segmentation: Segmentation | None = None,
        embedding_scope: Sequence[str] | None = None,
        embedding_dimension: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        ordered: bool = False,
        retrieve: bool = True,
        dedupe: bool = True,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        on_upload: UploadCallback | None = None,
        on_status: StatusCallback | None = None,
        delete_assets: bool = False,
        budget: RateBudget | None = None,
    ) -> ProducerStream[Outcome[EmbedTask]]: ...

    @overload
    def embed_many(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        *,
        api: Literal["v2"],
        model_name: ModelName | str | None = None,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[Scope] | None = None,
        embedding_option: Sequence[str] | None = None,
        segmentation: Segmentation | None = None,
        embedding_scope: Sequence[str] | None = None,
        embedding_dimension: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        ordered: bool = False,
        retrieve: bool = True,
        dedupe: bool = True,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        on_upload: UploadCallback | None = None,
        on_status: StatusCallback | None = None,
        delete_assets: bool = False,
        budget: RateBudget | None = None,
    ) -> ProducerStream[Outcome[V2Task]]: ...

    def embed_many(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        *,
        api: ApiName = "v1",
        model_name: ModelName | str | None = None,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[Scope] | None = None,
        embedding_option: Sequence[str] | None = None,
        segmentation: Segmentation | None = None,
        embedding_scope: Sequence[str] | None = None,
        embedding_dimension: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        journal: str | os.PathLike[str] | None = None,
        ordered: bool = False,
        retrieve: bool = True,
        dedupe: bool = True,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        on_upload: UploadCallback | None = None,
        on_status: StatusCallback | None = None,
        delete_assets: bool = False,
        budget: RateBudget | None = None,
    ) -> ProducerStream[Outcome[EmbedTask]] | ProducerStream[Outcome[V2Task]]:
        """Embed many inputs; iterate one :class:`~aioembed.Outcome` per input as each completes.

        Use as ``async with tasks.embed_many(paths) as outcomes: async for o in outcomes``.
        ``inputs``: paths, URLs, :class:`~aioembed.BatchItem` (sync or async iterable, read
        lazily). ``api`` chooses the Embed API; the rest works the same for both.
        ``api="v1"`` (``Marengo-retrieval-2.7``): ``video_clip_length`` and
        ``video_embedding_scope`` are the items' defaults (then 6 s, ``["clip"]``),
        ``embedding_option`` selects what is retrieved; outcomes carry an ``EmbedTask``.
        ``api="v2"`` (``marengo3.0`` or ``marengo3.5``): ``segmentation`` (``Fixed(6)``,
        ``Dynamic(4)``), ``embedding_option``, ``embedding_scope`` and
        ``embedding_dimension`` say what each task computes (``None``: the model's
        default); items may be v2 inputs (``VideoInput``, ``AudioInput``...); local
        files go inline as base64, larger ones as an asset (journaled: a rerun reuses
        it; ``delete_assets=True`` deletes each once its task is done); outcomes carry
        a ``V2Task`` with its vectors.

        Settings are checked before any request (:class:`~aioembed.ParameterError`,
        the server's code and message; the other API's parameters: ``ValueError``).
        At most ``concurrency`` items in flight. With ``journal`` (a SQLite path; or
        ``postgresql://…#NAME``, shared by processes: docs/ray-data.md) a rerun resumes
        without re-uploading or duplicating tasks; a path not an aioembed journal raises
        :class:`~aioembed.JournalError` untouched, an item journaled by the other API
        fails with it. Identical content: one task (``dedupe``); ``ordered``: input order;
        ``task_timeout`` / ``timeout`` (s) bound each task / the batch
        (:class:`~aioembed.WaitTimeoutError` in the outcome). An item's failure is its outcome's ``error``, never the batch's.
        ``budget`` (:class:`~aioembed.RateBudget`: requests per minute, media minutes
        per hour) paces every request and create of the batch instead of meeting 429s.
        """
        pacer = Pacer(budget, self._t.rate_limits)
        def run(api: BatchApi[TaskT]) -> ProducerStream[Outcome[TaskT]]:  # either API, one batch
            return BatchRun(
                api=api, concurrency=concurrency, journal=journal, ordered=ordered, dedupe=dedupe,
                sleep_interval=sleep_interval, max_interval=max_interval, task_timeout=task_timeout,
                timeout=timeout, on_upload=on_upload, on_status=on_status,
                delete_assets=delete_assets, assets=self._assets, pacer=pacer).stream(inputs)  # fmt: skip

        if api == "v2":
            _refuse(api, video_clip_length=video_clip_length, scope=video_embedding_scope)
            v2 = V2Api(  # checks the settings
                tasks=self._v2, assets=self._assets, uploads=self._t.uploads, pacer=pacer,
                model_name=model_name or ModelName.MARENGO_3_0, segmentation=segmentation,
                options=embedding_option, scopes=embedding_scope, dimension=embedding_dimension,
            )  # fmt: skip
            return run(v2)
        if api != "v1":
            raise ValueError(f"api must be 'v1' or 'v2', not {api!r}")
        _refuse(api, segmentation=segmentation, scope=embedding_scope, dim=embedding_dimension)
        _refuse(api, delete_assets=delete_assets or None)  # v1 makes no assets
        v1 = V1Api(
            tasks=self, model_name=str(model_name or DEFAULT_MODEL),
            clip_length=video_clip_length, scopes=video_embedding_scope,
            options=embedding_option, retrieve=retrieve, pacer=pacer,
        )  # fmt: skip
        return run(v1)

    @overload
    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        api: Literal["v1"] = "v1",
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[StatusUpdate]: ...

    @overload
    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        api: Literal["v2"],
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[V2StatusUpdate]: ...

    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        api: ApiName = "v1",
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[StatusUpdate] | ProducerStream[V2StatusUpdate]:
        """Status updates for many tasks from shared list polls, not one poll per task.

        Use as ``async with tasks.watch_many(ids) as updates: async for u in updates``.
        Each task yields its first status, every change, then one ``final`` update
        (terminal, or with an error such as :class:`~aioembed.WaitTimeoutError`).
        ``started_at`` (no later than the oldest task's creation) narrows each poll.
        ``api="v2"`` watches v2 tasks (``client.embed.v2.tasks.watch_many``): the
        final update carries the retrieved ``V2Task``, vectors included.
        """
        if api == "v2":
            return self._v2.watch_many(
                task_ids,
                sleep_interval=sleep_interval,
                max_interval=max_interval,
                task_timeout=task_timeout,
                timeout=timeout,
                started_at=started_at,
            )
        if api != "v1":
            raise ValueError(f"api must be 'v1' or 'v2', not {api!r}")
        return watch_many(
            self,
            task_ids,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
            started_at=started_at,
        )


def _refuse(api: str, **values: Any) -> None:
    """Misuse: a parameter of the other API (it would be silently ignored)."""
    given = [_NAMES.get(name, name) for name, value in values.items() if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: not a parameter of api={api!r} batches")


_NAMES = {
    "scope": "video_embedding_scope (v1) / embedding_scope (v2)",
    "dim": "embedding_dimension",
}
