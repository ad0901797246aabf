"""``client.embed.tasks``: the single-task calls plus the batch ones built on them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Sequence
from datetime import datetime

from ._batch import BatchInput, BatchRun, Outcome, StatusCallback, UploadCallback, watch_many
from ._defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MODEL,
    DEFAULT_SLEEP_INTERVAL,
)
from ._streams import ProducerStream
from ._tasks import Scope, TaskCalls
from ._watch import StatusUpdate

__all__ = ["EmbedTasks"]


class EmbedTasks(TaskCalls):
    """Video embedding tasks (``/embed/tasks``): one at a time, or many at once."""

    def embed_many(
        self,
        inputs: Iterable[BatchInput] | AsyncIterable[BatchInput],
        *,
        model_name: str = DEFAULT_MODEL,
        video_clip_length: float | None = None,
        video_embedding_scope: Sequence[Scope] | None = None,
        embedding_option: Sequence[str] | None = None,
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
    ) -> ProducerStream[Outcome]:
        """Embed many videos; iterate one :class:`~aioembed.Outcome` per input as each completes.

        Use as ``async with tasks.embed_many(paths) as outcomes: async for o in outcomes``.
        ``inputs`` are paths, URLs or :class:`~aioembed.BatchItem` (sync or async
        iterable, read lazily). ``video_clip_length`` and ``video_embedding_scope``
        are the batch's defaults for items that set none (then the service's: 6 s,
        ``["clip"]``); ``embedding_option`` selects what is retrieved (default: all).
        At most ``concurrency`` items are in flight; uploads are also bounded by
        ``Limits.max_uploads``. With ``journal`` (a SQLite path) a rerun after a
        crash resumes without re-uploading or duplicating tasks; a path holding
        anything but an aioembed journal raises :class:`~aioembed.JournalError`
        and is left untouched. Identical file content is embedded once
        (``dedupe``). ``ordered`` yields in input order. ``task_timeout`` /
        ``timeout`` (seconds) bound each task / the whole batch; a late item's
        outcome carries :class:`~aioembed.WaitTimeoutError`. An item's own
        failure is its outcome's ``error``; it never ends the batch.
        """
        return BatchRun(
            tasks=self,
            model_name=model_name,
            concurrency=concurrency,
            clip_length=video_clip_length,
            scopes=video_embedding_scope,
            options=embedding_option,
            journal=journal,
            ordered=ordered,
            retrieve=retrieve,
            dedupe=dedupe,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
            on_upload=on_upload,
            on_status=on_status,
        ).stream(inputs)

    def watch_many(
        self,
        task_ids: Iterable[str],
        *,
        sleep_interval: float = DEFAULT_SLEEP_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        task_timeout: float | None = None,
        timeout: float | None = None,
        started_at: datetime | None = None,
    ) -> ProducerStream[StatusUpdate]:
        """Status updates for many tasks from shared list polls, not one poll per task.

        Use as ``async with tasks.watch_many(ids) as updates: async for u in updates``.
        Each task yields its first status, every change, then one ``final`` update
        (terminal, or with an error such as :class:`~aioembed.WaitTimeoutError`).
        ``started_at`` (no later than the oldest task's creation) narrows each poll.
        """
        return watch_many(
            self,
            task_ids,
            sleep_interval=sleep_interval,
            max_interval=max_interval,
            task_timeout=task_timeout,
            timeout=timeout,
            started_at=started_at,
        )
