"""``status``, ``list`` and ``retrieve`` with ``--api v2``: the same output, v2 tasks.

A v2 task's retrieve does not name its model; the contract has marengo3.5 alone
report ``metadata.embedding_dimension``, which is how an export tells them apart.
"""

from __future__ import annotations

import argparse

import anyio.to_thread
import attrs

from .. import _wire
from ..contract.v2 import ModelName, TaskSummary, V2Task, converter
from ._embedded import endpoint
from ._export import InputInfo, Provenance, rows_of_v2, write
from ._view import err, out, print_rows

__all__ = ["v2_list", "v2_retrieve", "v2_status"]


def _json(task: V2Task) -> str:
    return _wire.dumps(converter().unstructure(task)).decode()


async def v2_status(args: argparse.Namespace) -> int:
    async with endpoint() as ep, ep.client() as client:
        task = await client.embed.v2.tasks.retrieve(args.task_id)
    out.print_json(_json(attrs.evolve(task, data=None)))  # the status, not the vectors
    return 0


def _cells(task: TaskSummary) -> tuple[str, str, str, str, str]:
    embedding = task.video_embedding or task.audio_embedding or task.image_embedding
    md = (embedding.metadata if embedding else None) or {}
    return (
        task.id,
        str(task.status),
        task.model_name or "",
        _wire.format_datetime(task.created_at) if task.created_at else "",
        str(md.get("input_filename") or md.get("input_url") or ""),
    )


async def v2_list(args: argparse.Namespace) -> int:
    tasks: list[TaskSummary] = []
    async with endpoint() as ep, ep.client() as client:
        async for task in client.embed.v2.tasks.list(page_limit=50, status=args.status):
            tasks.append(task)
            if len(tasks) >= args.limit:
                break
    print_rows(None, ("id", "status", "model", "created", "input"), map(_cells, tasks))
    return 0


def _provenance(task: V2Task, model_name: str, dimension: int) -> Provenance:
    md = task.metadata
    clip = getattr(md, "clip_length", None)
    return Provenance(
        model_name=model_name,
        dimension=dimension,
        clip_length=None if clip is None else float(clip),
        scopes=getattr(md, "embedding_scopes", None) or [],
        options=getattr(md, "embedding_options", None) or [],
        api="v2",
        segmentation="dynamic: shot boundaries" if clip is None else f"fixed {clip} s segments",
    )


async def v2_retrieve(args: argparse.Namespace) -> int:
    async with endpoint() as ep, ep.client() as client:
        task = await client.embed.v2.tasks.retrieve(args.task_id)
    if args.option:
        kept = [d for d in task.data or () if d.embedding_option in args.option]
        task = attrs.evolve(task, data=kept if task.data is not None else None)
    if not args.out:
        out.print_json(_json(task))
        return 0
    dimension = getattr(task.metadata, "embedding_dimension", None)
    model = ModelName.MARENGO_3_0 if dimension is None else ModelName.MARENGO_3_5
    name = getattr(task.metadata, "input_url", None) or getattr(
        task.metadata, "input_filename", None
    )
    rows = list(rows_of_v2(task, InputInfo(name or ""), model.value))
    dims = len(rows[0].vector) if rows else dimension or 512
    meta = _provenance(task, model.value, dims)
    n = await anyio.to_thread.run_sync(lambda: write(rows, meta, args.out))
    err.print(f"wrote {n} segments to {args.out}")
    return 0
