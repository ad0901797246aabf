"""Regenerate ``aioembed/engine/_calibration.py``: ``python -m tools.calibrate_engine``.

Run from the repository root; it writes the file in this checkout (never into an
installed package) and is not part of the wheel.

The weights-free backend standardises every raw feature with a fixed mean and
scale before projecting, so that unrelated clips score near cosine 0 rather than
all near 1 (raw histograms and energies are all positive and alike). The numbers
are measured once, deterministically, on the **calibration part** of the
real-media set (:mod:`benchmarks.real_media`: slideshows of packaged photographs
over packaged speech and music; the evaluation part, whose photographs and
recordings are disjoint from it, is never looked at here) together with generated
sample videos (:mod:`aioembed.samples`, seeds 10000+, which no test or benchmark
uses), weighted 80/20, so that both kinds of media are centred; clips of 2, 4, 6 and 10 s. They are
written out as literals so that the engine needs no data file and no
computation at import. Re-run it (and ``python -m benchmarks.engine_eval``) after
changing a feature; vectors change when the calibration does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aioembed import samples
from aioembed._params import clip_spans
from aioembed.engine._decode import iter_clips
from aioembed.engine._features import (
    AUDIO_GROUPS,
    VISUAL_GROUPS,
    FeatureBackend,
    audio_features,
    is_silent,
    visual_features,
)
from benchmarks import real_media

CLIP_LENGTHS = (2.0, 4.0, 6.0, 10.0)
SYNTHETIC_SEEDS = range(10_000, 10_016)
SYNTHETIC_SECONDS = 12.0
REAL_SHARE = 0.8
TARGET = Path(__file__).resolve().parent.parent / "aioembed" / "engine" / "_calibration.py"


def _scales(
    std: npt.NDArray[np.float64], groups: tuple[tuple[str, int, float], ...]
) -> npt.NDArray[np.float64]:
    # A feature that barely varies on the calibration set must not be blown up
    # elsewhere: floor each scale at a tenth of its group's median scale.
    out = std.copy()
    i = 0
    for _, size, _ in groups:
        part = out[i : i + size]
        floor = max(0.1 * float(np.median(part)), 1e-3)
        out[i : i + size] = np.maximum(part, floor)
        i += size
    return out


def synthetic(workdir: Path) -> list[tuple[Path, float]]:
    return [
        (
            samples.make_video(
                workdir / f"c{seed}.mp4",
                duration=SYNTHETIC_SECONDS,
                fps=10,
                seed=seed,
                pattern="static" if k % 4 == 3 else "shapes",
            ),
            SYNTHETIC_SECONDS,
        )
        for k, seed in enumerate(SYNTHETIC_SEEDS)
    ]


def features(
    paths: list[tuple[Path, float]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Visual and (non-silent) audio features of clips of ``(path, duration)`` videos."""
    visual, audio = [], []
    for k, (path, duration) in enumerate(paths):
        length = CLIP_LENGTHS[k % len(CLIP_LENGTHS)]
        for clip_length in (length, 6.0) if length != 6.0 else (6.0,):
            spans = clip_spans(0.0, duration, clip_length)
            for clip in iter_clips(
                path,
                spans,
                sample_fps=FeatureBackend.sample_fps,
                frame_size=FeatureBackend.frame_size,
            ):
                visual.append(visual_features(clip.frames))
                if not is_silent(clip.audio):
                    audio.append(audio_features(clip.audio))
    return np.array(visual), np.array(audio)


def _fit(
    real: npt.NDArray[np.float64], generated: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and standard deviation of a mixture weighting real clips by ``REAL_SHARE``:
    the real centre counts most (unrelated real clips then average cosine about 0),
    the generated one enough that generated videos still spread apart."""
    w = REAL_SHARE
    mean = w * real.mean(axis=0) + (1 - w) * generated.mean(axis=0)
    var = w * ((real - mean) ** 2).mean(axis=0) + (1 - w) * ((generated - mean) ** 2).mean(axis=0)
    return mean, np.sqrt(var)


def measure(
    real: list[tuple[Path, float]], generated: list[tuple[Path, float]]
) -> dict[str, npt.NDArray[np.float64]]:
    rv, ra = features(real)
    gv, ga = features(generated)
    v_mean, v_std = _fit(rv, gv)
    a_mean, a_std = _fit(ra, ga)
    return {
        "VISUAL_MEAN": v_mean,
        "VISUAL_SCALE": _scales(v_std, VISUAL_GROUPS),
        "AUDIO_MEAN": a_mean,
        "AUDIO_SCALE": _scales(a_std, AUDIO_GROUPS),
    }


def render(stats: dict[str, npt.NDArray[np.float64]], sources: int) -> str:
    lines = [
        '"""Per-feature centring and scale of the weights-free backend (generated file).',
        "",
        "Written by ``python -m tools.calibrate_engine`` from the calibration part of",
        f"the real-media set ({sources} source videos of ``benchmarks/real_media.py``",
        f"{real_media.VERSION}) and {len(SYNTHETIC_SEEDS)} generated sample videos; do not edit",
        "by hand.",
        '"""',
        "",
        "# fmt: off",
    ]
    for name, values in stats.items():
        numbers = [repr(round(float(x), 8)) for x in values]
        lines.append(f"{name}: tuple[float, ...] = (")
        for i in range(0, len(numbers), 6):
            lines.append("    " + ", ".join(numbers[i : i + 6]) + ",")
        lines.append(")")
    lines.append("# fmt: on")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the stats, do not write")
    args = parser.parse_args()
    try:
        root, meta = real_media.load()
    except real_media.Unavailable as exc:
        sys.exit(f"cannot calibrate: {exc}")
    paths = [
        (root / f["file"], real_media.DURATION)
        for f in meta["files"]
        if f["part"] == "calibration" and f["kind"] == "source"
    ]
    with tempfile.TemporaryDirectory() as tmp:
        stats = measure(paths, synthetic(Path(tmp)))
    text = render(stats, len(paths))
    if args.check:
        print(text)
        return
    TARGET.write_text(text)
    print(f"wrote {TARGET} ({', '.join(f'{k}[{len(v)}]' for k, v in stats.items())})")


if __name__ == "__main__":
    main()
