"""``aioembed``: serve, worker, embed many files with progress, inspect tasks, export, demo."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

from .. import _wire
from .._params import DEFAULT_CLIP_LENGTH, MODELS
from .._retry import is_transient
from ..client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SCOPES,
    AsyncClient,
    BatchItem,
    Journal,
    Outcome,
    ProducerStream,
    RateBudget,
)
from ..client._pg_journal import PgJournal, is_pg_url
from ..contract.v2 import V2Task
from ..contract import v1
from ..errors import (
    AioEmbedError,
    BadRequestError,
    JournalError,
    NotFoundError,
    PayloadTooLargeError,
    TaskFailedError,
)
from ..models import EmbedTask
from ._args import parse
from ._demo import run_demo
from ._embedded import Endpoint, cache_dir, endpoint, private_dir
from ._errors import CliError, UsageError
from ._export import (
    InputInfo,
    Provenance,
    Row,
    input_info,
    rows_of,
    rows_of_v2,
    v2_provenance,
    write,
)
from ._inputs import expand_inputs
from ._merge import describe, merge
from ._shard import Shard, write_manifest
from ._v2_commands import v2_list, v2_retrieve, v2_status
from ._view import BatchView, err, out, print_tasks, progress_display, summary

__all__ = ["main"]


async def run_embed(args: argparse.Namespace) -> int:
    inputs = await anyio.to_thread.run_sync(expand_inputs, args.inputs)
    if not inputs:
        raise UsageError(f"no inputs matched {' '.join(args.inputs)}")
    out_path = Path(args.out) if args.out else None
    if args.shard is not None:
        if out_path is None:
            raise UsageError("--shard needs --out: each shard writes its own part")
        inputs = args.shard.select(inputs)
        # The batch's budgets, split: N shards together stay within them.
        if args.concurrency is None:
            args.concurrency = args.shard.share(DEFAULT_CONCURRENCY)
        for budget in ("requests_per_minute", "media_minutes_per_hour"):
            if getattr(args, budget):
                setattr(args, budget, getattr(args, budget) / args.shard.count)
    shared = _shared_journal(args, out_path)
    outcomes: list[Outcome[Any]] = []
    started = time.perf_counter()
    async with endpoint(workers=args.workers) as ep, ep.client() as client:
        journal: Path | PgJournal
        if shared is not None:
            journal = shared
        elif args.journal:
            journal = Path(args.journal)
        else:
            journal = _default_journal(out_path, inputs, args, ep)
        if isinstance(journal, PgJournal):
            await journal.open()  # refused now, before any display or upload
        elif not args.resume:  # start afresh; anything but a journal there is refused
            await anyio.to_thread.run_sync(Journal.remove, journal)
        else:  # refused now, before any display or upload, if it is not a usable journal
            probe = Journal(journal)
            await probe.open()
            await probe.close()
        if ep.embedded:
            err.print(f"[dim]embedded local server at {ep.base_url}[/]")
        with progress_display() as progress:
            view = BatchView(progress, len(inputs))
            batch_inputs = inputs if shared is None else _keyed(inputs)
            async with _batch(client, batch_inputs, args, journal, view) as stream:
                async for outcome in stream:
                    outcomes.append(outcome)
                    view.on_outcome(outcome)
    outcomes.sort(key=lambda o: o.index)
    summary(outcomes, time.perf_counter() - started)
    if out_path is not None:
        await _export_batch(outcomes, args, out_path)
    if args.shard is not None or shared is not None:
        assert out_path is not None
        shard = args.shard or Shard(1, 1)  # the parts of a shared journal: one "shard"
        failed = {o.item.label: str(o.error) for o in outcomes if not o.ok}
        meta = _provenance(args).as_metadata()
        await anyio.to_thread.run_sync(
            lambda: write_manifest(out_path, shard, keys=inputs, failed=failed, provenance=meta)
        )
    if shared is not None:
        return await _finish_shared(outcomes, shared)
    assert isinstance(journal, Path)
    return _finish(outcomes, journal)


def _shared_journal(args: argparse.Namespace, out_path: Path | None) -> PgJournal | None:
    """The batch's PostgreSQL journal for ``--journal postgresql://…#NAME``, else ``None``."""
    if not is_pg_url(args.journal):
        return None
    if out_path is None:
        raise UsageError("a postgresql:// journal needs --out: each process writes its own part")
    if args.shard is not None:
        raise UsageError("--shard and a postgresql:// journal both split a batch: use one")
    # Done only once this process's part is written: a process killed before loses no output.
    return PgJournal(args.journal, complete_on_emit=False)


def _keyed(inputs: list[str]) -> list[BatchItem]:
    """Each input keyed as written, so every process (and the manifest) names it alike."""
    return [attrs.evolve(BatchItem.of(i), key=i) for i in inputs]


async def _finish_shared(outcomes: list[Outcome[Any]], journal: PgJournal) -> int:
    """Mark this process's items done (their output is in its part); hand back those a
    retry may pass, for a process still running or the next run to take."""
    done: list[str] = []
    retry: list[str] = []
    for o in outcomes:
        if o.item.key is not None:
            (retry if _retryable(o) else done).append(o.item.key)
    try:
        await journal.complete(done)
        await journal.release(retry)
    finally:
        await journal.close()
    return 0 if all(o.ok for o in outcomes) else 1


def _batch(
    client: AsyncClient,
    inputs: list[str] | list[BatchItem],
    args: argparse.Namespace,
    journal: Path | PgJournal,
    view: BatchView,
) -> ProducerStream[Outcome[EmbedTask]] | ProducerStream[Outcome[V2Task]]:
    """``embed_many`` with the command's flags, for the API ``--api`` names."""
    options: dict[str, Any] = {}
    if args.concurrency is not None:
        options["concurrency"] = args.concurrency
    if args.requests_per_minute or args.media_minutes_per_hour:
        options["budget"] = RateBudget(
            requests_per_minute=args.requests_per_minute,
            media_minutes_per_hour=args.media_minutes_per_hour,
        )
    tasks = client.embed.tasks
    common = dict(journal=journal, on_upload=view.on_upload, on_status=view.on_status, **options)
    if args.api == "v2":
        return tasks.embed_many(
            inputs,
            api="v2",
            model_name=args.model,
            segmentation=args.segmentation,
            embedding_option=args.option,
            embedding_scope=args.scope,
            embedding_dimension=args.embedding_dimension,
            **common,
        )
    return tasks.embed_many(
        inputs,
        model_name=args.model,
        video_clip_length=args.clip_length,
        video_embedding_scope=args.scope,
        embedding_option=args.option,
        **common,
    )


def _finish(outcomes: list[Outcome[Any]], journal: Path) -> int:
    failed = [o for o in outcomes if not o.ok]
    retryable = [o for o in failed if _retryable(o)]
    if retryable:
        err.print(
            f"[dim]journal kept at {journal}: rerun with --resume to retry "
            f"{len(retryable)} failure(s) that may pass next time[/]"
        )
        return 1
    Journal.remove(journal)  # nothing a rerun could resume
    if failed:
        err.print("[dim]every failure is permanent (see the notes): a rerun would fail the same way[/]")
        return 1
    return 0


def _retryable(outcome: Outcome[Any]) -> bool:
    """Would a ``--resume`` rerun give this item another chance (the journal's rule)?"""
    error = outcome.error
    if isinstance(error, TaskFailedError):
        return is_transient(error)
    # What the journal records as failed for good; timeouts, 401s and the like stay pending.
    return not isinstance(error, (BadRequestError, PayloadTooLargeError, NotFoundError))


def _provenance(args: argparse.Namespace) -> Provenance:
    if args.api == "v2":
        return v2_provenance(args.v2_spec)
    model = MODELS[args.model]
    return Provenance(
        model_name=model.name,
        dimension=model.dims,
        clip_length=args.clip_length or DEFAULT_CLIP_LENGTH,
        scopes=args.scope or list(DEFAULT_SCOPES),
        options=args.option or list(model.video_options),
    )


async def _export_batch(
    outcomes: list[Outcome[Any]], args: argparse.Namespace, path: Path
) -> None:
    meta = _provenance(args)

    def rows() -> list[Row]:
        found: list[Row] = []
        for o in outcomes:
            if not o.ok or o.task is None:
                continue
            source = input_info(o.item.label)
            if isinstance(o.task, V2Task):
                found.extend(rows_of_v2(o.task, source, args.model))
            else:
                found.extend(rows_of(o.task, source))
        return found

    n = await anyio.to_thread.run_sync(lambda: write(rows(), meta, path))
    ok = sum(o.ok for o in outcomes)
    err.print(f"wrote {n} segments of {ok} input(s) to {path}")


def _default_journal(
    out_path: Path | None, inputs: list[str], args: argparse.Namespace, ep: Endpoint
) -> Path:
    """Beside the output file, or in the cache named for what defines the batch: its inputs,
    model, clip length, scopes and options, and its server. Flags such as ``--resume`` or
    ``--concurrency`` do not change the batch, so they do not change the name."""
    if out_path is not None:
        return Path(f"{out_path}.journal.sqlite")
    identity: dict[str, Any] = {
        "inputs": [i if "://" in i else os.path.abspath(i) for i in inputs],
        "model": args.model,
        "clip_length": args.clip_length or DEFAULT_CLIP_LENGTH,
        "scopes": sorted(args.scope or DEFAULT_SCOPES),
        "options": sorted(args.option or []),
        "server": "embedded" if ep.embedded else ep.base_url,
    }
    if args.api == "v2":  # v1 names stay as they were, so earlier journals are found
        identity.update(api="v2", spec=repr(args.v2_spec))
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return private_dir(cache_dir() / "journals") / f"{digest}.sqlite"  # Journal makes it 0600


async def run_merge(args: argparse.Namespace) -> int:
    report = await anyio.to_thread.run_sync(merge, args.parts, args.out)
    lines = describe(report, args.out)
    err.print(lines[0])
    for line in lines[1:]:
        print(line, file=sys.stderr)
    return 0 if report.complete else 1


async def run_status(args: argparse.Namespace) -> int:
    if args.api == "v2":
        return await v2_status(args)
    async with endpoint() as ep, ep.client() as client:
        task = await client.embed.tasks.status(args.task_id)
    out.print_json(_wire.dumps(v1.unstructure(task)).decode())
    return 0


async def run_list(args: argparse.Namespace) -> int:
    if args.api == "v2":
        return await v2_list(args)
    tasks: list[EmbedTask] = []
    async with endpoint() as ep, ep.client() as client:
        async for task in client.embed.tasks.list(page_limit=50, status=args.status):
            tasks.append(task)
            if len(tasks) >= args.limit:
                break
    print_tasks(tasks)
    return 0


async def run_retrieve(args: argparse.Namespace) -> int:
    if args.api == "v2":
        return await v2_retrieve(args)
    async with endpoint() as ep, ep.client() as client:
        task = await client.embed.tasks.retrieve(args.task_id, embedding_option=args.option)
    if not args.out:
        out.print_json(_wire.dumps(v1.unstructure(task)).decode())
        return 0
    md = task.video_embedding.metadata if task.video_embedding else None
    source = InputInfo((task.metadata.input_url or task.metadata.input_filename or "") if task.metadata else "")
    rows = list(rows_of(task, source))
    model = MODELS.get(task.model_name or "")
    dims = len(rows[0].vector) if rows else model.dims if model else 0
    meta = Provenance(
        model_name=task.model_name or "",
        dimension=dims,
        clip_length=md.video_clip_length if md else None,
        scopes=(md.video_embedding_scope if md else None) or [],
        options=(md.video_embedding_option if md else None)
        or args.option
        or (list(model.video_options) if model else []),
    )
    n = await anyio.to_thread.run_sync(lambda: write(rows, meta, args.out))
    err.print(f"wrote {n} segments to {args.out}")
    return 0


COMMANDS = {
    "embed": run_embed,
    "status": run_status,
    "list": run_list,
    "retrieve": run_retrieve,
    "merge": run_merge,
    "demo": run_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from ..server import main as serve

        return serve(argv[1:])
    if argv[:1] == ["worker"]:
        from ._worker import main as worker

        return worker(argv[1:])
    args = parse(argv)
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue" if args.command == "embed" else ""
        err.print(f"[yellow]interrupted{hint}[/]")
        return 130
    except JournalError as e:  # not a journal (left untouched), corrupt or locked
        print(f"aioembed {args.command}: error: {e}", file=sys.stderr)
        return 2
    except CliError as e:
        print(f"aioembed {args.command}: error: {e}", file=sys.stderr)  # one line, never wrapped
        return e.exit_code
    except AioEmbedError as e:
        print(f"aioembed {args.command}: {e}", file=sys.stderr)
        return 1
