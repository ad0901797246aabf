"""How much of marengo3.5's vector a prefix keeps: near-duplicate retrieval by dimension.

    python -m benchmarks.nested [--quick] [--sources N]

marengo3.5 answers ``embedding_dimension: d`` with the first ``d`` of its 512
values (the engine orders them by decreasing information, ``tools/fit_nesting.py``).
N generated source videos (seeds 700+; the ordering was fitted on seeds 3000+) are
transformed into near-duplicates (re-encode, resize, crop, brightness/contrast,
1 s trim, audio gain, all at once); every 3 s clip of a copy queries the clips of
all sources, ranked by the cosine of the first ``d`` values; the relevant clip is
the source clip it overlaps most. Reported per option and ``d``: recall@1 and the
margin (mean cosine to the relevant clip minus the 99th percentile of cosines to
other videos' clips), for marengo3.5 and, as the baseline measured in the same
run, the very same vectors before the reordering (the backend's projection order:
a prefix of those is a random projection). A benchmark: it asserts nothing.
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
from aioembed.engine._v2 import Fixed, V2Request, embed_v2
from aioembed.engine._v2models import _reflections

CLIP = 3.0
DIMS = (8, 16, 32, 64, 128, 256, 512)
ORDERS = ("projection", "information")
Segs = list[tuple[str, float, float, np.ndarray]]
# name -> (transform_video keyword arguments, extension, source-time shift in s)
TRANSFORMS: dict[str, tuple[dict[str, Any], str, float]] = {
    "reencode-vp8-low": ({"bitrate": 250_000}, "webm", 0.0),
    "resize-half": ({"size": (240, 136)}, "mp4", 0.0),
    "crop-5%": ({"crop": 0.05}, "mp4", 0.0),
    "brightness+contrast": ({"brightness": 0.08, "contrast": 1.25}, "mp4", 0.0),
    "trim-1s": ({"trim_start": 1.0}, "mp4", 1.0),
    "gain-10dB": ({"gain_db": -10.0}, "mp4", 0.0),
    "all-at-once": (
        {"size": (400, 224), "crop": 0.03, "brightness": 0.05, "trim_start": 1.0, "gain_db": -6.0},
        "mp4",
        1.0,
    ),
}


def _source(args: tuple[Path, int, float]) -> Path:
    root, seed, duration = args
    return samples.make_video(
        root / f"s{seed}.mp4", duration=duration, width=480, height=270, seed=seed
    )


def _copy(args: tuple[Path, Path, str]) -> Path:
    src, root, name = args
    kw, ext, _ = TRANSFORMS[name]
    return samples.transform_video(src, root / f"{src.stem}-{name}.{ext}", **kw)


def _unnest(v: np.ndarray, option: str) -> np.ndarray:
    """The backend's own order: the reflections undone (each is its own inverse)."""
    y = v.astype(np.float64)
    for w in reversed(_reflections(option)):
        y -= 2.0 * (w @ y) * w
    return y


def _embed(path: Path) -> dict[str, Segs]:
    request = V2Request(
        model="marengo3.5",
        input_kind="video",
        segmentation=Fixed(CLIP),
        scopes=("clip",),
        options=("visual", "audio"),
    )
    items = [
        (s.option.value, float(s.start or 0), float(s.end or 0), s.vector)
        for s in embed_v2(path, request).segments
    ]
    return {
        "information": items,
        "projection": [(o, a, b, _unnest(v, o)) for o, a, b, v in items],
    }


def _map(fn: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    if workers <= 1:
        return [fn(i) for i in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def _scores(
    src: list[Segs], copies: list[tuple[int, float, Segs]], option: str, d: int
) -> tuple[float, float]:
    """(recall@1, margin) of the ``d``-value prefixes."""
    keys, rows = [], []
    for vid, segs in enumerate(src):
        for o, s, e, v in segs:
            if o == option:
                keys.append((vid, s, e))
                rows.append(v[:d])
    db = np.stack(rows).astype(np.float64)
    db /= np.maximum(np.linalg.norm(db, axis=1, keepdims=True), 1e-12)
    hits, near, other = [], [], []
    for vid, shift, segs in copies:
        for o, s, e, v in segs:
            if o != option:
                continue
            overlap = [
                min(e + shift, de) - max(s + shift, ds) if dv == vid else -1.0
                for dv, ds, de in keys
            ]
            q = v[:d].astype(np.float64)
            sims = db @ (q / max(float(np.linalg.norm(q)), 1e-12))
            target = int(np.argmax(overlap))
            hits.append(int(np.argmax(sims)) == target)
            near.append(sims[target])
            other.extend(sims[[i for i, k in enumerate(keys) if k[0] != vid]])
    return float(np.mean(hits)), float(np.mean(near) - np.percentile(other, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description="marengo3.5 prefixes: recall@1 by dimension")
    parser.add_argument("--quick", action="store_true", help="6 sources of 10 s")
    parser.add_argument("--sources", type=int, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    n = args.sources or (6 if args.quick else 12)
    duration = 10.0 if args.quick else 12.0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        srcs = _map(_source, [(root, seed, duration) for seed in range(700, 700 + n)], args.workers)
        jobs = [(p, root, name) for p in srcs for name in TRANSFORMS]
        copies = _map(_copy, jobs, args.workers)
        src_emb = _map(_embed, srcs, args.workers)
        copy_emb = _map(_embed, copies, args.workers)
    print(
        f"## marengo3.5 prefixes: recall@1 / margin ({n} sources x {len(TRANSFORMS)} "
        f"transforms, {duration:g} s, {CLIP:g} s clips)\n"
    )
    print("| option | order | " + " | ".join(f"d={d}" for d in DIMS) + " |")
    print("|---|---|" + "---|" * len(DIMS))
    for option in ("visual", "audio"):
        for order in ORDERS:
            src = [e[order] for e in src_emb]
            qs = [
                (srcs.index(p), TRANSFORMS[name][2], e[order])
                for (p, _, name), e in zip(jobs, copy_emb, strict=True)
            ]
            cells = [_scores(src, qs, option, d) for d in DIMS]
            label = "3.5 (information)" if order == "information" else "baseline (projection)"
            print(
                f"| {option} | {label} | "
                + " | ".join(f"{r:.3f} / {m:+.2f}" for r, m in cells)
                + " |"
            )
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
