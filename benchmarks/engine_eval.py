"""Near-duplicate retrieval quality of the default engine backend.

    python -m benchmarks.engine_eval [--quick] [--sources N] [--model NAME]

N distinct source videos are generated (:mod:`aioembed.samples`, seeds 500+),
and each is transformed into near-duplicates: re-encoded with another codec and
bitrate, resized, cropped, brightness/contrast shifted, trimmed by 1 s, its audio
gain changed, and all of these at once. Every source video is cut into 6 s clips
(the database). Each clip of each transformed video is a query; its one relevant
item is the source clip of the same video that overlaps it most in source time
(so a trimmed copy's clip [0, 6) must find the source's [0, 6), which it overlaps
by 5 s, not [6, 12)). Rank the whole database by cosine and report recall@1 and
mean average precision (with one relevant item, AP = 1/rank), separately for the
visual and the audio option, plus the similarity gap: cosine to the relevant clip
versus cosine to clips of other videos.

A benchmark, not a test: it asserts nothing. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from aioembed import samples
from aioembed.engine import embed_video

CLIP = 6.0

# name -> (transform_video keyword arguments, extension, source-time shift in s)
TRANSFORMS: dict[str, tuple[dict[str, Any], str, float]] = {
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


def _make_source(args: tuple[Path, int, float]) -> Path:
    root, seed, duration = args
    return samples.make_video(
        root / f"src{seed}.mp4", duration=duration, width=640, height=360, fps=15, seed=seed
    )


def _make_copy(args: tuple[Path, Path, str]) -> Path:
    src, root, name = args
    kw, ext, _ = TRANSFORMS[name]
    return samples.transform_video(src, root / f"{src.stem}-{name}.{ext}", **kw)


def _embed(args: tuple[Path, str]) -> list[tuple[str, float, float, np.ndarray]]:
    path, model = args
    return [
        (s.option, s.start, s.end, s.vector)
        for s in embed_video(path, model_name=model, clip_length=CLIP)
    ]


def _map(fn: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    if workers <= 1:
        return [fn(i) for i in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def evaluate(sources: int, duration: float, model: str, workers: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seeds = list(range(500, 500 + sources))
        src_paths = _map(_make_source, [(root, s, duration) for s in seeds], workers)
        jobs = [(p, root, name) for p in src_paths for name in TRANSFORMS]
        copy_paths = _map(_make_copy, jobs, workers)
        generated = time.perf_counter() - t0
        src_emb = _map(_embed, [(p, model) for p in src_paths], workers)
        copy_emb = _map(_embed, [(p, model) for p in copy_paths], workers)
    options = sorted({o for e in src_emb for o, *_ in e})
    results: dict[str, Any] = {"generated_s": generated, "total_s": time.perf_counter() - t0}
    for option in options:
        db_vecs, db_keys = [], []
        for vid, segs in enumerate(src_emb):
            for o, s, e, v in segs:
                if o == option:
                    db_vecs.append(v)
                    db_keys.append((vid, s, e))
        db = np.stack(db_vecs).astype(np.float64)
        ranks, near, unrelated = [], [], []
        per_transform: dict[str, list[int]] = {}
        for (src, _, name), segs in zip(jobs, copy_emb, strict=True):
            vid = src_paths.index(src)
            shift = TRANSFORMS[name][2]
            for o, s, e, v in segs:
                if o != option:
                    continue
                qs, qe = s + shift, e + shift
                overlaps = [
                    (min(qe, de) - max(qs, ds)) if dv == vid else -1.0 for dv, ds, de in db_keys
                ]
                target = int(np.argmax(overlaps))
                sims = db @ v.astype(np.float64)
                rank = 1 + int(np.sum(sims > sims[target]))
                ranks.append(rank)
                per_transform.setdefault(name, []).append(rank)
                near.append(sims[target])
                unrelated.extend(sims[[i for i, k in enumerate(db_keys) if k[0] != vid]])
        r = np.array(ranks)
        results[option] = {
            "queries": len(r),
            "recall@1": float(np.mean(r == 1)),
            "mAP": float(np.mean(1.0 / r)),
            "near_mean": float(np.mean(near)),
            "near_p5": float(np.percentile(near, 5)),
            "unrelated_mean": float(np.mean(unrelated)),
            "unrelated_p99": float(np.percentile(unrelated, 99)),
            "per_transform": {
                k: float(np.mean(np.array(v) == 1)) for k, v in per_transform.items()
            },
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="near-duplicate retrieval quality of the engine")
    parser.add_argument(
        "--quick", action="store_true", help="6 sources of 12 s instead of 20 of 18 s"
    )
    parser.add_argument("--sources", type=int, default=None)
    parser.add_argument("--model", default="marengo3.0")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sources = args.sources or (6 if args.quick else 20)
    duration = 12.0 if args.quick else 18.0
    res = evaluate(sources, duration, args.model, args.workers)
    print(
        f"## Engine near-duplicate retrieval ({args.model}, {sources} sources x "
        f"{len(TRANSFORMS)} transforms, {duration:g} s, {CLIP:g} s clips)\n"
    )
    print(
        "| option | queries | recall@1 | mAP | cos near-dup (mean / p5) | cos unrelated (mean / p99) |"
    )
    print("|---|---|---|---|---|---|")
    for option in ("visual", "visual-text", "audio"):
        if option in res:
            m = res[option]
            print(
                f"| {option} | {m['queries']} | {m['recall@1']:.3f} | {m['mAP']:.3f} | "
                f"{m['near_mean']:.3f} / {m['near_p5']:.3f} | "
                f"{m['unrelated_mean']:.3f} / {m['unrelated_p99']:.3f} |"
            )
    print("\nrecall@1 per transform:\n")
    opts = [o for o in ("visual", "visual-text", "audio") if o in res]
    print("| transform | " + " | ".join(opts) + " |")
    print("|---|" + "---|" * len(opts))
    for name in TRANSFORMS:
        print(
            f"| {name} | " + " | ".join(f"{res[o]['per_transform'][name]:.3f}" for o in opts) + " |"
        )
    print(f"\n(generation {res['generated_s']:.0f} s, total {res['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
