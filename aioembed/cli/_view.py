"""What the commands show: the live batch display, the batch summary and task lists.

Task ids are never shortened: they are what the user copies into the next
command. Piped output is plain tab-separated text; a terminal gets tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .. import _wire
from ..client import BatchItem, Outcome, StatusUpdate
from ..contract.v2 import V2Task
from ..errors import APIStatusError, TaskFailedError
from ..models import EmbedTask

__all__ = ["BatchView", "error_note", "print_rows", "print_tasks", "progress_display", "summary"]

err = Console(stderr=True)
out = Console()


class _CountOrBytes(ProgressColumn):
    """``3/21`` for the batch, ``1.2/4.0 MB`` for an upload (tasks with ``bytes=True``)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("bytes"):
            return self._bytes.render(task)
        total = "?" if task.total is None else f"{task.total:g}"
        return Text(f"{task.completed:g}/{total}", style="progress.download")


def progress_display() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _CountOrBytes(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


class BatchView:
    """The live display: overall bar, one bar per upload in flight, status counts."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.overall = progress.add_task("embedding", total=total)
        self.uploads: dict[str, TaskID] = {}
        self.statuses: Counter[str] = Counter()

    def on_upload(self, item: BatchItem, sent: int, total: int | None) -> None:
        bar = self.uploads.get(item.label)
        if bar is None:
            bar = self.uploads[item.label] = self.progress.add_task(
                f"  upload {Path(item.label).name}", total=total, bytes=True
            )
        self.progress.update(bar, completed=sent)
        if total is not None and sent >= total:
            self.progress.remove_task(bar)

    def on_status(self, update: StatusUpdate) -> None:
        if update.task is not None and not update.final:
            p = update.task.progress
            if p is not None:
                self.progress.update(
                    self.overall,
                    description=f"embedding ({p.clips_done}/{p.clips_total} clips in {update.task_id})",
                )

    def on_outcome(self, outcome: Outcome[Any]) -> None:
        self.statuses["ready" if outcome.ok else "failed"] += 1
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        self.progress.update(self.overall, advance=1, description=f"embedding [{counts}]")


def error_note(error: BaseException) -> str:
    """``code: message`` once (an API error's ``str`` already carries its status and code)."""
    if isinstance(error, APIStatusError):
        return f"{error.code}: {error.message}"
    if isinstance(error, TaskFailedError) and error.error is not None:
        return f"{error.error.code}: {error.error.message}"
    return f"{type(error).__name__}: {error}"


def _notes(outcomes: Sequence[Outcome[Any]]) -> dict[int, str]:
    """Per outcome index; of the inputs that share a task, the first is the original."""
    first: dict[str, Outcome[Any]] = {}
    notes: dict[int, str] = {}
    for o in sorted(outcomes, key=lambda o: o.index):
        if o.error is not None:
            notes[o.index] = error_note(o.error)
        elif o.task_id is not None and o.task_id in first and not o.resumed:
            notes[o.index] = f"same content as {first[o.task_id].item.label}"
        elif o.resumed:
            notes[o.index] = "resumed"
        if o.task_id is not None:
            first.setdefault(o.task_id, o)
    return notes


def _segments(task: EmbedTask | V2Task | None) -> int:
    if task is None:
        return 0
    return len(task.data or ()) if isinstance(task, V2Task) else len(task.segments)


def summary(outcomes: Sequence[Outcome[Any]], elapsed: float) -> None:
    """The per-input table (tab-separated when piped) and the failure count."""
    notes = _notes(outcomes)
    title = f"{len(outcomes)} inputs in {elapsed:.1f} s"
    header = ("input", "task", "status", "segments", "note")
    rows = [
        (
            o.item.label,
            o.task_id or "-",
            str(o.status) if o.status else "error",
            str(_segments(o.task)),
            notes.get(o.index, ""),
        )
        for o in outcomes
    ]
    print_rows(title, header, rows)
    failed = sum(not o.ok for o in outcomes)
    if failed:
        err.print(f"[red]{failed} of {len(outcomes)} failed[/]")


def print_rows(title: str | None, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table on a terminal (column 1 or 2 holds ids: never cut), else tab-separated lines."""
    if not out.is_terminal:
        if title:
            print(title)
        print("\t".join(header))
        for row in rows:
            print("\t".join(row))
        return
    table = Table(title=title)
    for name in header:
        if name in ("id", "task"):
            table.add_column(name, no_wrap=True, min_width=24)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _task_cells(task: EmbedTask) -> tuple[str, str, str, str, str]:
    md = task.metadata
    return (
        task.id,
        str(task.status),
        task.model_name or "",
        _wire.format_datetime(task.created_at) if task.created_at else "",
        (md.input_filename or md.input_url or "") if md else "",
    )


def print_tasks(tasks: Iterable[EmbedTask]) -> None:
    print_rows(None, ("id", "status", "model", "created", "input"), map(_task_cells, tasks))
