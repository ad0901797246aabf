"""Near-duplicate retrieval quality of the default engine backend, on real and generated media.

    python -m benchmarks.engine_eval [--set real|synthetic|both] [--quick] [--model NAME]

Two evaluations, each printed as Markdown tables:

**real** (:mod:`benchmarks.real_media`, built once into a cache outside the
repository from Debian and PyPI packages; skipped with a message where they
cannot be had): the *evaluation* part only - slideshows of photographs with
camera motion over recorded speech, synthetic speech or music, and their copies
(mirror, letterbox, pillarbox, 10 % crop, pink noise at 10 dB SNR and -12 dB, 3 s
trim, 1.1x speed, burnt-in overlay, half-size re-encode, a combination). Nothing
of the engine was fitted on these photographs or recordings.

**synthetic**: N generated source videos (:mod:`aioembed.samples`, seeds 500+)
and eleven near-duplicates of each (re-encodes, resizes, 5 % crop, brightness and
contrast, 1 s trim, audio gain, all at once).

Both use 6 s clips. *Clip level*: each clip of each copy is a query against
every clip of every source; its relevant items are the clips of its own source
that cover at least half of its span in source time (so a copy trimmed by 3 s has
two: it straddles them), or the one covering most. *Video level*: each copy's
``video`` vector against every source's. recall@1 = the top hit is relevant; AP
is average precision over the relevant items (1/rank with one). Rows per
transform x option x level, and the same for a trivial **baseline** (an 8x8 grey
thumbnail of the clip's middle frame; a 32-band log spectrum), so that a gain
over it is visible.

Cosine distributions (real set): near-duplicates (query vs its relevant clip),
unrelated clips and videos (other sources), and two hard negatives per source:
the *same photographs re-edited* over other audio of the same kind (its audio
against the source's, time-aligned), and the *same soundtrack over other
pictures* (its pictures against the source's).

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from aioembed import samples
from aioembed._params import clip_spans
from aioembed.engine import get_backend, get_model
from aioembed.engine._decode import iter_clips
from aioembed.engine._media import probe

from . import real_media

CLIP = 6.0
OPTIONS = ("visual", "audio")
F32 = npt.NDArray[np.float32]

# name -> (transform_video keyword arguments, extension, source-time shift in s)
SYNTHETIC: dict[str, tuple[dict[str, Any], str, float]] = {
    "reencode-vp8-low": ({"bitrate": 250_000}, "webm", 0.0),
    "reencode-mpeg4": (
        {"codec": "mpeg4", "bitrate": 400_000, "audio_codec": "libmp3lame"},
        "mkv",
        0.0,
    ),
    "resize-half": ({"size": (320, 180)}, "mp4", 0.0),
    "resize-up": ({"size": (960, 540)}, "mp4", 0.0),
    "crop-5%": ({"crop": 0.05}, "mp4", 0.0),
    "brightness+contrast": ({"brightness": 0.08, "contrast": 1.25}, "mp4", 0.0),
    "darker-flat": ({"brightness": -0.1, "contrast": 0.8}, "mp4", 0.0),
    "trim-1s": ({"trim_start": 1.0}, "mp4", 1.0),
    "gain-10dB": ({"gain_db": -10.0}, "mp4", 0.0),
    "gain+6dB": ({"gain_db": 6.0}, "mov", 0.0),
    "all-at-once": (
        {
            "size": (400, 224),
            "crop": 0.03,
            "brightness": 0.05,
            "contrast": 1.1,
            "trim_start": 1.0,
            "gain_db": -6.0,
            "bitrate": 300_000,
        },
        "mp4",
        1.0,
    ),
}


@attrs.frozen
class Item:
    """One file of a set: ``source`` id, ``kind`` (``source``, a transform or a hard
    negative), and how its time maps to its source's: ``src = shift + t * speed``."""

    path: Path
    source: str
    kind: str
    shift: float = 0.0
    speed: float = 1.0


@attrs.frozen
class Embedded:
    """Per method (``engine``/``baseline``) and option: clip spans, clip vectors, video vector."""

    spans: list[tuple[float, float]]
    clips: dict[tuple[str, str], F32]
    video: dict[tuple[str, str], F32]


# --------------------------------------------------------------------------- embedding


def _thumb(frame: npt.NDArray[np.uint8]) -> F32:
    """The baseline picture: 8x8 grey, mean removed (so brightness cancels)."""
    g = frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    h, w = g.shape
    rows = np.array_split(np.arange(h), 8)
    cols = np.array_split(np.arange(w), 8)
    t = np.array([[g[np.ix_(r, c)].mean() for c in cols] for r in rows]).ravel()
    return (t - t.mean()).astype(np.float32)


def _spectrum(audio: npt.NDArray[np.float32]) -> F32:
    """The baseline sound: mean log power in 32 log-spaced bands, level removed."""
    if audio.size < 1024:
        return np.zeros(32, np.float32)
    frames = audio[: audio.size // 512 * 512].reshape(-1, 512).astype(np.float64)
    power = (np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2).mean(axis=0)
    edges = np.unique(np.geomspace(2, 257, 33).astype(int))
    bands = np.array([power[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    out = np.log10(bands + 1e-12)
    out = np.pad(out, (0, 32 - out.size))
    return (out - out.mean()).astype(np.float32)


def _unit(v: npt.NDArray[Any]) -> F32:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def embed(args: tuple[Path, str]) -> Embedded:
    """The engine's vectors (its backend through the public seam, as ``embed_video``
    computes them) and the baseline's, from one decode pass."""
    path, model_name = args
    model, be = get_model(model_name), get_backend()
    spans = clip_spans(0.0, probe(path).duration, CLIP)
    clips: dict[tuple[str, str], list[F32]] = {}
    for clip in iter_clips(path, spans, sample_fps=be.sample_fps, frame_size=be.frame_size):
        mid = clip.frames[len(clip.frames) // 2]
        for key, vec in (
            (("engine", "visual"), be.visual(clip.frames, clip.times, model, "visual")),
            (("engine", "audio"), be.audio(clip.audio, model, "audio")),
            (("baseline", "visual"), _unit(_thumb(mid))),
            (("baseline", "audio"), _unit(_spectrum(clip.audio))),
        ):
            clips.setdefault(key, []).append(vec)
    weights = np.array([e - s for s, e in spans], np.float64)
    stacked = {k: np.stack(v) for k, v in clips.items()}
    video = {}
    for (method, option), m in stacked.items():
        if method == "engine":
            video[method, option] = be.pool(m, weights, model, option)
        else:
            video[method, option] = _unit((m.astype(np.float64) * weights[:, None]).sum(axis=0))
    return Embedded(spans, stacked, video)


def _map(fn: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    if workers <= 1:
        return [fn(i) for i in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=1))


# --------------------------------------------------------------------------- metrics


def _relevant(item: Item, span: tuple[float, float], src_spans: list[tuple[float, float]]) -> list[int]:
    qs, qe = item.shift + span[0] * item.speed, item.shift + span[1] * item.speed
    overlaps = [min(qe, de) - max(qs, ds) for ds, de in src_spans]
    half = 0.5 * (qe - qs) - 1e-6
    rel = [i for i, o in enumerate(overlaps) if o >= half]
    return rel or [int(np.argmax(overlaps))]


def _ap(sims: npt.NDArray[np.float64], relevant: list[int]) -> tuple[bool, float]:
    order = np.argsort(-sims, kind="stable")
    ranks = np.sort(np.nonzero(np.isin(order, relevant))[0] + 1)
    ap = float(np.mean(np.arange(1, ranks.size + 1) / ranks))
    return bool(ranks[0] == 1), ap


def score(
    items: list[Item], emb: list[Embedded], method: str, option: str
) -> dict[str, dict[str, list[tuple[bool, float]]]]:
    """``{level: {kind: [(hit@1, AP), ...]}}`` for the copies (not sources or hard negatives)."""
    sources = {it.source: e for it, e in zip(items, emb, strict=True) if it.kind == "source"}
    ids = sorted(sources)
    key = (method, option)
    db = np.concatenate([sources[s].clips[key] for s in ids]).astype(np.float64)
    owner = [(s, j) for s in ids for j in range(len(sources[s].spans))]
    vdb = np.stack([sources[s].video[key] for s in ids]).astype(np.float64)
    out: dict[str, dict[str, list[tuple[bool, float]]]] = {"clip": {}, "video": {}}
    for it, e in zip(items, emb, strict=True):
        if it.kind == "source" or it.kind in real_media.HARD_NEGATIVES:
            continue
        src_spans = sources[it.source].spans
        for span, q in zip(e.spans, e.clips[key], strict=True):
            rel_local = _relevant(it, span, src_spans)
            rel = [owner.index((it.source, j)) for j in rel_local]
            out["clip"].setdefault(it.kind, []).append(_ap(db @ q.astype(np.float64), rel))
        hit = _ap(vdb @ e.video[key].astype(np.float64), [ids.index(it.source)])
        out["video"].setdefault(it.kind, []).append(hit)
    return out


def cosines(items: list[Item], emb: list[Embedded], method: str, option: str) -> dict[str, Any]:
    """Cosine samples: near-duplicates, unrelated clips/videos, the two hard negatives."""
    key = (method, option)
    by = {(it.source, it.kind): e for it, e in zip(items, emb, strict=True)}
    sources = {it.source for it in items}
    out: dict[str, list[float]] = {
        "near-duplicate": [],
        "unrelated clips": [],
        "unrelated videos": [],
        "same pictures, other audio": [],
        "same audio, other pictures": [],
    }
    for it, e in zip(items, emb, strict=True):
        src = by[it.source, "source"]
        if it.kind == "source":
            for other in sources - {it.source}:
                o = by[other, "source"]
                out["unrelated clips"] += (e.clips[key] @ o.clips[key].T).ravel().tolist()
                out["unrelated videos"].append(float(e.video[key] @ o.video[key]))
        elif it.kind in real_media.HARD_NEGATIVES:
            name = "same pictures, other audio" if it.kind == "re-edit" else "same audio, other pictures"
            n = min(len(e.spans), len(src.spans))
            out[name] += np.sum(e.clips[key][:n] * src.clips[key][:n], axis=1).tolist()
        else:
            for span, q in zip(e.spans, e.clips[key], strict=True):
                j = _relevant(it, span, src.spans)[0]
                out["near-duplicate"].append(float(q @ src.clips[key][j]))
    return out


# --------------------------------------------------------------------------- sets


def real_items() -> list[Item] | str:
    """The real set's evaluation part, or why it is unavailable."""
    try:
        root, meta = real_media.load()
    except real_media.Unavailable as exc:
        return str(exc)
    return [
        Item(root / f["file"], f["source"], f["kind"], f["shift"], f["speed"])
        for f in meta["files"]
        if f["part"] == "evaluation"
    ]


def synthetic_items(root: Path, sources: int, duration: float, workers: int) -> list[Item]:
    seeds = list(range(500, 500 + sources))
    srcs = _map(_make_source, [(root, s, duration) for s in seeds], workers)
    jobs = [(p, root, name) for p in srcs for name in SYNTHETIC]
    copies = _map(_make_copy, jobs, workers)
    items = [Item(p, p.stem, "source") for p in srcs]
    items += [
        Item(c, src.stem, name, SYNTHETIC[name][2])
        for (src, _, name), c in zip(jobs, copies, strict=True)
    ]
    return items


def _make_source(args: tuple[Path, int, float]) -> Path:
    root, seed, duration = args
    return samples.make_video(
        root / f"src{seed}.mp4", duration=duration, width=640, height=360, fps=15, seed=seed
    )


def _make_copy(args: tuple[Path, Path, str]) -> Path:
    src, root, name = args
    kw, ext, _ = SYNTHETIC[name]
    return samples.transform_video(src, root / f"{src.stem}-{name}.{ext}", **kw)


# --------------------------------------------------------------------------- report


def _mean(xs: list[tuple[bool, float]], k: int) -> float:
    return float(np.mean([x[k] for x in xs])) if xs else float("nan")


def report(title: str, items: list[Item], emb: list[Embedded], with_cosines: bool) -> str:
    kinds = list(dict.fromkeys(it.kind for it in items if it.kind != "source"))
    kinds = [k for k in kinds if k not in real_media.HARD_NEGATIVES]
    scores = {
        (m, o): score(items, emb, m, o) for m in ("engine", "baseline") for o in OPTIONS
    }
    n_src = sum(it.kind == "source" for it in items)
    lines = [f"### {title}: {n_src} sources, {len(kinds)} transforms, {CLIP:g} s clips\n"]
    head = "| transform | " + " | ".join(
        f"{o} {lvl} r@1 / mAP" for o in OPTIONS for lvl in ("video", "clip")
    )
    lines += [head + " |", "|---|" + "---|" * 4]
    for method in ("engine", "baseline"):
        for kind in ["all", *kinds]:
            cells = []
            for o in OPTIONS:
                for lvl in ("video", "clip"):
                    per = scores[method, o][lvl]
                    xs = [x for v in per.values() for x in v] if kind == "all" else per.get(kind, [])
                    cells.append(f"{_mean(xs, 0):.2f} / {_mean(xs, 1):.2f}")
            label = kind if method == "engine" else f"*baseline* {kind}"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
            if method == "baseline":
                break  # the baseline's per-transform rows would double the table
    if with_cosines:
        lines += ["", "Cosines, engine (baseline) - mean / 5th / 95th percentile:\n"]
        lines += ["| pairs | visual | audio |", "|---|---|---|"]
        cos = {(m, o): cosines(items, emb, m, o) for m in ("engine", "baseline") for o in OPTIONS}
        for name in cos["engine", "visual"]:
            cells = []
            for o in OPTIONS:
                e, b = np.array(cos["engine", o][name]), np.array(cos["baseline", o][name])
                if e.size == 0:
                    cells.append("-")
                    continue
                cells.append(
                    f"{e.mean():.2f} / {np.percentile(e, 5):.2f} / {np.percentile(e, 95):.2f} "
                    f"({b.mean():.2f})"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(which: str, model: str, workers: int, quick: bool) -> str:
    out = []
    if which in ("real", "both"):
        got = real_items()
        if isinstance(got, str):
            out.append(f"### Real media: skipped - {got}\n")
        else:
            t0 = time.perf_counter()
            emb = _map(embed, [(it.path, model) for it in got], workers)
            out.append(report("Real media (held-out evaluation part)", got, emb, True))
            out.append(f"(embedding {time.perf_counter() - t0:.0f} s)\n")
    if which in ("synthetic", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            n, duration = (6, 12.0) if quick else (20, 18.0)
            items = synthetic_items(Path(tmp), n, duration, workers)
            emb = _map(embed, [(it.path, model) for it in items], workers)
        out.append(report("Synthetic (generated)", items, emb, False))
        out.append(f"(generation + embedding {time.perf_counter() - t0:.0f} s)\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="near-duplicate retrieval quality of the engine")
    parser.add_argument("--set", choices=("real", "synthetic", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="synthetic: 6 sources of 12 s")
    parser.add_argument("--model", default="marengo3.0")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"## Engine near-duplicate retrieval ({args.model})\n")
    print(run(args.set, args.model, args.workers, args.quick))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
