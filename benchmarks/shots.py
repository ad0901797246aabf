"""Shot-boundary and audio-change detection on generated media with known changes.

    python -m benchmarks.shots [--quick] [--videos N]

Videos (:func:`aioembed.samples.make_video`, seeds 900+, 30 s, 320x180) change
scene every 1.5-4 s by hard cuts, 1 s dissolves, or a mix; soundtracks
(:func:`aioembed.samples.make_audio`) change at the same instants, with or without
0.5 s silences at about half of them. A detected boundary within 0.5 s of an
unmatched true one is a hit: precision = hits / detected, recall = hits / true.
Then ``embed_v2``'s peak traced memory (tracemalloc: NumPy's buffers included) on
a 20 s and an 80 s video, dynamic segmentation with every option: the ratio shows
whether memory grows with length. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from aioembed import samples
from aioembed.engine._decode import iter_clips
from aioembed.engine._segments import fixed_spans
from aioembed.engine._shots import AudioChangeDetector, Boundary, ShotDetector
from aioembed.engine._v2 import Dynamic, V2Request, embed_v2

TOLERANCE = 0.5
DURATION = 30.0


def match(found: list[float], truth: list[float], tol: float = TOLERANCE) -> int:
    """Hits: each detected boundary claims the first unmatched true one within ``tol``."""
    used: set[int] = set()
    for f in found:
        for i, t in enumerate(truth):
            if i not in used and abs(t - f) <= tol:
                used.add(i)
                break
    return len(used)


def video_boundaries(path: Path, duration: float) -> list[Boundary]:
    detector, found, last = ShotDetector(), [], -1.0
    for clip in iter_clips(path, fixed_spans(0, duration, 0.5), audio=False):
        for t, frame in zip(clip.times, clip.frames, strict=True):
            if t > last:
                found += detector.push(float(t), frame)
                last = float(t)
    return found + detector.finish()


def audio_boundaries(path: Path, duration: float) -> list[Boundary]:
    detector, found = AudioChangeDetector(), []
    for clip in iter_clips(path, fixed_spans(0, duration, 0.5), video=False, audio=True):
        found += detector.push(clip.audio)
    return found + detector.finish()


def _row(name: str, counts: list[tuple[int, int, int]]) -> str:
    hits, det, true = (sum(c[i] for c in counts) for i in range(3))
    p, r = hits / max(det, 1), hits / max(true, 1)
    return f"| {name} | {true} | {det} | {p:.3f} | {r:.3f} | {2 * p * r / max(p + r, 1e-9):.3f} |"


def detection(root: Path, videos: int) -> list[str]:
    rows = []
    for transition in ("cut", "dissolve", "mixed"):
        counts = []
        for seed in range(900, 900 + videos):
            path = samples.make_video(
                root / f"{transition}{seed}.mp4",
                duration=DURATION,
                width=320,
                height=180,
                seed=seed,
                transition=transition,
                audio=False,
            )
            truth = [c.time for c in samples.scene_changes(seed, DURATION, transition=transition)]
            found = [b.time for b in video_boundaries(path, DURATION)]
            counts.append((match(found, truth), len(found), len(truth)))
        rows.append(_row(f"video, {transition}", counts))
    for gap in (0.0, 0.5):
        counts = []
        for seed in range(900, 900 + videos):
            path = samples.make_audio(
                root / f"a{seed}-{gap}.wav", duration=DURATION, seed=seed, gap=gap
            )
            truth = [c.time for c in samples.scene_changes(seed, DURATION, audio=True, gap=gap)]
            found = [b.time for b in audio_boundaries(path, DURATION)]
            counts.append((match(found, truth), len(found), len(truth)))
        rows.append(_row(f"audio, {'changes + silences' if gap else 'spectral changes'}", counts))
    return rows


def peak_memory(root: Path, duration: float) -> tuple[float, float]:
    path = samples.make_video(
        root / f"m{duration:g}.mp4", duration=duration, width=320, height=180, seed=42
    )
    request = V2Request(
        model="marengo3.5",
        input_kind="video",
        segmentation=Dynamic(2),
        types=("separate_embedding", "fused_embedding"),
        scopes=("clip",),
        uncertainty=True,
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    embed_v2(path, request)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, wall


def main() -> None:
    parser = argparse.ArgumentParser(description="shot and audio-change detection quality")
    parser.add_argument("--quick", action="store_true", help="3 videos per kind")
    parser.add_argument("--videos", type=int, default=None)
    args = parser.parse_args()
    videos = args.videos or (3 if args.quick else 12)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = detection(root, videos)
        peak_memory(root, 4.0)  # warm-up: one-time caches are not the pass's
        mem = {d: peak_memory(root, d) for d in (20.0, 80.0)}
    print(f"## Boundary detection ({videos} x {DURATION:g} s per row, tolerance {TOLERANCE} s)\n")
    print("| media | true | detected | precision | recall | F1 |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    (m20, w20), (m80, w80) = mem[20.0], mem[80.0]
    print("\n## embed_v2 peak traced memory (dynamic, every option, uncertainty)\n")
    print("| video | peak MiB | wall s |\n|---|---|---|")
    print(f"| 20 s | {m20:.1f} | {w20:.1f} |\n| 80 s | {m80:.1f} | {w80:.1f} |")
    print(f"\n80 s / 20 s: memory x{m80 / m20:.2f}, time x{w80 / w20:.2f}")


if __name__ == "__main__":
    main()
