"""Regenerate :mod:`aioembed.engine._calibration`: ``python -m aioembed.engine._calibrate``.

The weights-free backend standardises every raw feature with a fixed mean and
scale before projecting, so that unrelated clips score near cosine 0 rather than
all near 1 (raw histograms and energies are all positive and alike). The numbers
are measured once, deterministically, on clips of generated sample videos
(:mod:`aioembed.samples`, seeds 10000+, none of which the tests or the benchmarks
use) and written out as literals so that the engine needs no data file and no
computation at import. Re-run it (and re-run the evaluation) after changing a
feature; vectors change when the calibration does.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .. import samples
from .._params import clip_spans
from ._decode import iter_clips
from ._features import (
    AUDIO_GROUPS,
    VISUAL_GROUPS,
    FeatureBackend,
    audio_features,
    is_silent,
    visual_features,
)

SEEDS = range(10_000, 10_048)
DURATION = 12.0
CLIP_LENGTHS = (2.0, 4.0, 6.0, 10.0)


def _scales(
    std: npt.NDArray[np.float64], groups: tuple[tuple[str, int, float], ...]
) -> npt.NDArray[np.float64]:
    # A feature that barely varies on samples must not be blown up on real media:
    # floor each scale at a tenth of its group's median scale.
    out = std.copy()
    i = 0
    for _, size, _ in groups:
        part = out[i : i + size]
        floor = max(0.1 * float(np.median(part)), 1e-3)
        out[i : i + size] = np.maximum(part, floor)
        i += size
    return out


def measure(workdir: Path) -> dict[str, npt.NDArray[np.float64]]:
    visual, audio = [], []
    for k, seed in enumerate(SEEDS):
        path = samples.make_video(
            workdir / f"c{seed}.mp4",
            duration=DURATION,
            fps=10,
            seed=seed,
            pattern="static" if k % 4 == 3 else "shapes",
        )
        length = CLIP_LENGTHS[k % len(CLIP_LENGTHS)]
        spans = clip_spans(0.0, DURATION, length)
        hints = {"sample_fps": FeatureBackend.sample_fps, "frame_size": FeatureBackend.frame_size}
        for clip in iter_clips(path, spans, **hints):  # type: ignore[arg-type]
            visual.append(visual_features(clip.frames))
            if not is_silent(clip.audio):
                audio.append(audio_features(clip.audio))
        path.unlink()
    v, a = np.array(visual), np.array(audio)
    return {
        "VISUAL_MEAN": v.mean(axis=0),
        "VISUAL_SCALE": _scales(v.std(axis=0), VISUAL_GROUPS),
        "AUDIO_MEAN": a.mean(axis=0),
        "AUDIO_SCALE": _scales(a.std(axis=0), AUDIO_GROUPS),
    }


def render(stats: dict[str, npt.NDArray[np.float64]]) -> str:
    lines = [
        '"""Per-feature centring and scale of the weights-free backend (generated file).',
        "",
        "Written by ``python -m aioembed.engine._calibrate`` from generated sample videos;",
        "do not edit by hand.",
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
    with tempfile.TemporaryDirectory() as tmp:
        stats = measure(Path(tmp))
    text = render(stats)
    if args.check:
        print(text)
        return
    target = Path(__file__).with_name("_calibration.py")
    target.write_text(text)
    print(f"wrote {target} ({', '.join(f'{k}[{len(v)}]' for k, v in stats.items())})")


if __name__ == "__main__":
    main()
