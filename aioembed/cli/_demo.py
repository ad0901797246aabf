"""``aioembed demo``: three generated videos through the embedded server, then their similarities.

One of the three is a re-encoded, cropped, brightened, quieter copy of another:
the tables show the copy matching its original clip for clip, and the closing
lines are computed from those same numbers, so they can never contradict them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.table import Table

from ..client import Outcome, StatusUpdate
from ._embedded import cache_dir, endpoint
from ._view import err, out

__all__ = ["run_demo"]

CLIP = 4.0


def _samples(work: Path) -> list[Path]:
    from ..samples import make_video, transform_video

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
    return [a, a2, b]


def _show(update: StatusUpdate) -> None:
    t = update.task
    extra = f" {t.progress.clips_done}/{t.progress.clips_total} clips" if t and t.progress else ""
    err.print(f"  {update.task_id}  {t.status if t else 'error'}{extra}")


def _clips(results: dict[str, Outcome], option: str) -> dict[str, list[np.ndarray]]:
    """Per short name (``ocean``, ``ocean'``, ``city``) its clip vectors in time order."""
    clips: dict[str, list[np.ndarray]] = {}
    for name, outcome in results.items():
        task = outcome.task
        assert task is not None and task.video_embedding is not None
        short = Path(name).stem.replace("-reencoded", "'")
        segments = task.video_embedding.select(option=option, scope="clip")
        clips[short] = [s.array() for s in sorted(segments, key=lambda s: s.start_offset_sec or 0)]
    return clips


def _table(option: str, clips: dict[str, list[np.ndarray]]) -> Table:
    table = Table(title=f"{option}: cosine similarity of {CLIP:g}-second clips")
    table.add_column("clip")
    labelled = [
        (f"{name}@{i * CLIP:g}s", v) for name, vectors in clips.items() for i, v in enumerate(vectors)
    ]
    for label, _ in labelled:
        table.add_column(label, justify="right")
    for label, v in labelled:
        cells = []
        for _, w in labelled:
            sim = float(np.dot(v, w))
            colour = "green" if sim > 0.9 else "yellow" if sim > 0.6 else "dim"
            cells.append(f"[{colour}]{sim:.2f}[/]")
        table.add_row(label, *cells)
    return table


def _verdict(option: str, clips: dict[str, list[np.ndarray]]) -> tuple[str, bool]:
    """One sentence of figures from the table, and whether the copy stands out."""
    same = [float(np.dot(a, b)) for a, b in zip(clips["ocean"], clips["ocean'"], strict=False)]
    other = [
        float(np.dot(c, v)) for c in clips["city"] for name in ("ocean", "ocean'") for v in clips[name]
    ]
    found = min(same) > max(other)
    return (
        f"{option}: ocean' against ocean at the same time {min(same):.2f}-{max(same):.2f}; "
        f"city against either at most {max(other):.2f}.",
        found,
    )


async def run_demo(args: argparse.Namespace) -> int:
    work = Path(args.dir) if args.dir else cache_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    inputs = _samples(work)
    results: dict[str, Outcome] = {}
    async with endpoint(embedded=True) as ep, ep.client() as client:
        err.print(f"[dim]embedded local server at {ep.base_url}[/]")
        batch = client.embed.tasks.embed_many(
            inputs,
            video_clip_length=CLIP,
            video_embedding_scope=["clip", "video"],
            sleep_interval=0.5,
            on_status=_show,
        )
        async with batch as stream:
            async for outcome in stream:
                name = Path(outcome.item.label).name
                err.print(f"[green]done[/] {name}: {outcome.status or outcome.error}")
                results[name] = outcome
    if not all(o.ok for o in results.values()):
        return 1
    results = {p.name: results[p.name] for p in inputs}
    verdicts = []
    for option in ("visual-text", "audio"):
        clips = _clips(results, option)
        out.print(_table(option, clips))
        verdicts.append(_verdict(option, clips))
    out.print("ocean' is ocean.mp4 re-encoded, cropped, brightened and 6 dB quieter.")
    for sentence, _ in verdicts:
        out.print(sentence)
    if all(found for _, found in verdicts):
        out.print("In both, the copy scores above every clip of the unrelated video.")
    else:
        missed = [s.split(":")[0] for s, found in verdicts if not found]
        out.print(f"In {', '.join(missed)} the unrelated video comes as close as the copy.")
    return 0
