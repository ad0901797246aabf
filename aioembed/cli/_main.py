"""``aioembed``: serve, embed many files with progress, inspect tasks, export, demo."""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .. import _wire
from ..client import (
    DEFAULT_CONCURRENCY,
    AsyncClient,
    BatchItem,
    Journal,
    Outcome,
    StatusUpdate,
)
from ..contract import v1
from ..errors import AioEmbedError
from ._embedded import default_data_dir, endpoint
from ._export import FORMATS, rows_of, write

__all__ = ["main"]

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}
err = Console(stderr=True)
out = Console()


def expand_inputs(specs: Sequence[str]) -> list[str]:
    """Paths, directories (recursively, video suffixes only), globs and URLs, in order, once each."""
    found: list[str] = []
    for spec in specs:
        if spec.lower().startswith(("http://", "https://")):
            found.append(spec)
        elif Path(spec).is_dir():
            found.extend(
                str(p)
                for p in sorted(Path(spec).rglob("*"))
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
        elif glob.has_magic(spec):
            found.extend(sorted(glob.glob(spec, recursive=True)))
        else:
            found.append(spec)  # a missing path becomes a failed outcome naming it
    return list(dict.fromkeys(found))


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
                f"  upload {Path(item.label).name}", total=total
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
                    description=f"embedding ({p.clips_done}/{p.clips_total} clips in {update.task_id[:8]})",
                )

    def on_outcome(self, outcome: Outcome) -> None:
        self.statuses["ready" if outcome.ok else "failed"] += 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        self.progress.update(self.overall, advance=1, description=f"embedding [{summary}]")


async def run_embed(args: argparse.Namespace) -> int:
    inputs = expand_inputs(args.inputs)
    if not inputs:
        err.print("[red]no inputs matched[/]")
        return 2
    out_path = Path(args.out) if args.out else None
    if out_path is not None and out_path.suffix.lower() not in FORMATS:
        err.print(f"[red]unknown output format {out_path.suffix!r}; use {', '.join(FORMATS)}[/]")
        return 2
    journal = Path(args.journal or _default_journal(out_path, inputs, args))
    if not args.resume:
        _remove_journal(journal)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    async with (
        endpoint(workers=args.workers) as ep,
        AsyncClient(ep.api_key, base_url=ep.base_url) as client,
    ):
        if ep.embedded:
            err.print(f"[dim]embedded local server at {ep.base_url}[/]")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as progress:
            view = BatchView(progress, len(inputs))
            batch = client.embed.tasks.embed_many(
                inputs,
                model_name=args.model,
                concurrency=args.concurrency,
                video_clip_length=args.clip_length,
                video_embedding_scope=args.scope,
                embedding_option=args.option,
                journal=journal,
                on_upload=view.on_upload,
                on_status=view.on_status,
            )
            async with batch as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
                    view.on_outcome(outcome)
    elapsed = time.perf_counter() - started
    outcomes.sort(key=lambda o: o.index)
    if out_path is not None:
        rows = [row for o in outcomes if o.ok and o.task for row in rows_of(o.task, o.item.label)]
        n = write(rows, out_path)
        err.print(f"wrote {n} segments to {out_path}")
    _summary(outcomes, elapsed)
    if any(not o.ok for o in outcomes):
        err.print(f"[dim]journal kept at {journal}: rerun with --resume to retry the failures[/]")
        return 1
    _remove_journal(journal)  # complete: nothing left to resume
    return 0


def _default_journal(out_path: Path | None, inputs: list[str], args: argparse.Namespace) -> Path:
    """Beside the output file, or (with no output) in the cache, named for the batch."""
    if out_path is not None:
        return Path(f"{out_path}.journal.sqlite")
    digest = hashlib.sha1(repr((inputs, vars(args))).encode()).hexdigest()[:16]
    return default_data_dir().parent / "journals" / f"{digest}.sqlite"


def _remove_journal(journal: Path) -> None:
    Journal.remove(journal)  # JournalError (nothing deleted) unless it is a journal


def _summary(outcomes: list[Outcome], elapsed: float) -> None:
    table = Table(title=f"{len(outcomes)} inputs in {elapsed:.1f} s")
    for col in ("input", "task", "status", "segments", "note"):
        table.add_column(col)
    for o in outcomes:
        note = "resumed" if o.resumed else "duplicate content" if o.deduplicated else ""
        if o.error is not None:
            note = f"{getattr(o.error, 'code', type(o.error).__name__)}: {o.error}"
        status = str(o.status) if o.status else "error"
        table.add_row(
            o.item.label, o.task_id or "-", status, str(len(o.task.segments) if o.task else 0), note
        )
    out.print(table)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        err.print(f"[red]{len(failed)} of {len(outcomes)} failed[/]")


async def run_status(args: argparse.Namespace) -> int:
    async with endpoint() as ep, AsyncClient(ep.api_key, base_url=ep.base_url) as client:
        task = await client.embed.tasks.status(args.task_id)
    out.print_json(_wire.dumps(v1.unstructure(task)).decode())
    return 0


async def run_list(args: argparse.Namespace) -> int:
    async with endpoint() as ep, AsyncClient(ep.api_key, base_url=ep.base_url) as client:
        table = Table()
        for col in ("id", "status", "model", "created", "input"):
            table.add_column(col)
        n = 0
        async for task in client.embed.tasks.list(page_limit=50, status=args.status):
            md = task.metadata
            table.add_row(
                task.id,
                str(task.status),
                task.model_name or "",
                _wire.format_datetime(task.created_at) if task.created_at else "",
                (md.input_filename or md.input_url or "") if md else "",
            )
            n += 1
            if n >= args.limit:
                break
    out.print(table)
    return 0


async def run_retrieve(args: argparse.Namespace) -> int:
    async with endpoint() as ep, AsyncClient(ep.api_key, base_url=ep.base_url) as client:
        task = await client.embed.tasks.retrieve(args.task_id, embedding_option=args.option)
    if args.out:
        md = task.metadata
        label = (md.input_filename or md.input_url or "") if md else ""
        n = write(rows_of(task, label), args.out)
        err.print(f"wrote {n} segments to {args.out}")
    else:
        out.print_json(_wire.dumps(v1.unstructure(task)).decode())
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    from ..samples import make_video, transform_video

    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    err.print(f"making sample videos in {work} ...")
    a = make_video(work / "ocean.mp4", duration=8, seed=1)
    b = make_video(work / "city.mp4", duration=8, seed=2)
    a2 = transform_video(
        a,
        work / "ocean-reencoded.mp4",
        size=(360, 360),
        crop=0.05,
        brightness=0.05,
        gain_db=-6,
        bitrate=300_000,
    )
    inputs = [a, a2, b]
    results: dict[str, Outcome] = {}
    async with endpoint() as ep, AsyncClient(ep.api_key, base_url=ep.base_url) as client:
        err.print(f"[dim]server: {ep.base_url}{' (embedded)' if ep.embedded else ''}[/]")

        def show(update: StatusUpdate) -> None:
            t = update.task
            extra = (
                f" {t.progress.clips_done}/{t.progress.clips_total} clips"
                if t and t.progress
                else ""
            )
            err.print(f"  {update.task_id}  {t.status if t else 'error'}{extra}")

        batch = client.embed.tasks.embed_many(
            inputs,
            video_clip_length=4,
            video_embedding_scope=["clip", "video"],
            sleep_interval=0.5,
            on_status=show,
        )
        async with batch as stream:
            async for outcome in stream:
                err.print(
                    f"[green]done[/] {Path(outcome.item.label).name}: {outcome.status or outcome.error}"
                )
                results[Path(outcome.item.label).name] = outcome
    if not all(o.ok for o in results.values()):
        return 1
    import numpy as np

    names = [p.name for p in inputs]
    for option in ("visual-text", "audio"):
        table = Table(title=f"{option}: cosine similarity of 4-second clips")
        table.add_column("clip")
        clips: list[tuple[str, np.ndarray]] = []
        for name in names:
            task = results[name].task
            assert task is not None and task.video_embedding is not None
            for seg in task.video_embedding.select(option=option, scope="clip"):
                short = Path(name).stem.replace("-reencoded", "'")
                clips.append((f"{short}@{seg.start_offset_sec:g}s", seg.array()))
        for label, _ in clips:
            table.add_column(label, justify="right")
        for label, v in clips:
            cells = []
            for _, w in clips:
                sim = float(np.dot(v, w))
                colour = "green" if sim > 0.9 else "yellow" if sim > 0.6 else "dim"
                cells.append(f"[{colour}]{sim:.2f}[/]")
            table.add_row(label, *cells)
        out.print(table)
    out.print(
        "ocean' is ocean.mp4 re-encoded, cropped, brightened and 6 dB quieter: its clips match"
        " ocean's clip for clip; city's match neither."
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aioembed", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "serve", help="run the local server (see `aioembed serve --help`)", add_help=False
    )

    e = sub.add_parser("embed", help="embed many videos with progress and export the vectors")
    e.add_argument("inputs", nargs="+", metavar="PATH|GLOB|DIR|URL")
    e.add_argument("--out", help="results file: .jsonl, .parquet or .npz (written atomically)")
    e.add_argument("--model", default="Marengo-retrieval-2.7")
    e.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"items in flight (default {DEFAULT_CONCURRENCY})",
    )
    e.add_argument("--clip-length", type=float, default=None, help="seconds, 2-10 (default 6)")
    e.add_argument("--scope", action="append", choices=["clip", "video"], help="repeatable")
    e.add_argument("--option", action="append", help="embedding option, repeatable (default all)")
    e.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its journal"
    )
    e.add_argument("--journal", help="journal path (default: OUT.journal.sqlite)")
    e.add_argument("--workers", type=int, default=None, help="embedded server's worker processes")

    s = sub.add_parser("status", help="show a task's status")
    s.add_argument("task_id")
    ls = sub.add_parser("list", help="list tasks, newest first")
    ls.add_argument("--status", choices=["processing", "ready", "failed"])
    ls.add_argument("--limit", type=int, default=50)
    r = sub.add_parser("retrieve", help="fetch a task's embeddings")
    r.add_argument("task_id")
    r.add_argument("--option", action="append")
    r.add_argument("--out", help=".jsonl, .parquet or .npz; JSON to stdout without it")
    d = sub.add_parser("demo", help="embed generated sample videos and show their similarities")
    d.add_argument("--dir", default="aioembed-demo", help="where the sample videos go")
    return p


COMMANDS = {
    "embed": run_embed,
    "status": run_status,
    "list": run_list,
    "retrieve": run_retrieve,
    "demo": run_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from ..server import main as serve

        return serve(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; rerun with --resume to continue[/]")
        return 130
    except AioEmbedError as e:
        err.print(f"[red]{e}[/]")
        return 1
