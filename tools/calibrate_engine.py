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
uses), weighted 80/20, so that both kinds of media are centred; clips of 2, 4, 6 and 10 s.

It fits two things per kind (visual, audio):

1. the per-feature **mean and scale** (``*_MEAN``, ``*_SCALE``) of the raw
   descriptors;
2. in the space of the standardised, group-weighted descriptors at unit length
   (what the engine projects), their **centre** (``*_CENTRE``) and a **shrinkage
   whitening** of their spread: the ``AXES`` leading principal directions of the
   80/20 covariance ``S`` (``*_AXES``, ``AXES x dims``) and a gain per direction
   (``*_GAINS``) that takes its variance ``e`` to the same level as the rest's:
   ``sqrt((t + SHRINK * a) / (e + SHRINK * a))``, with ``a`` the mean variance
   over all directions and ``t`` the mean over the directions not kept (those keep
   gain 1). ``SHRINK = 1`` is half-way between full whitening (``(S)^-1/2``, which
   a set of 15 videos cannot estimate: it would blow up directions measured from
   a handful of clips) and none. Per-feature centring left a few correlated
   directions carrying most of the variance; a modest shift of the population
   along them (other photographs) put a component shared by every vector, which
   the mean of a video's clips keeps: unrelated real videos scored 0.16 cosine.

The numbers are written out as literals so that the engine needs no data file and
no computation at import. Re-run it (then ``python -m benchmarks.engine_eval``
and ``tools/fit_nesting.py``) after changing a feature; vectors change when the
calibration does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

from aioembed import samples
from aioembed._params import clip_spans
from aioembed.engine._decode import iter_clips
from aioembed.engine._features import (
    AUDIO_GROUPS,
    VISUAL_GROUPS,
    Calibration,
    FeatureBackend,
    audio_features,
    is_silent,
    visual_features,
    weighted_unit,
)
from benchmarks import real_media

CLIP_LENGTHS = (2.0, 4.0, 6.0, 10.0)
SYNTHETIC_SEEDS = range(10_000, 10_016)
SYNTHETIC_SECONDS = 12.0
REAL_SHARE = 0.8
AXES = 32
SHRINK = 1.0
DIGITS = 8
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
    """Mean and covariance of a mixture weighting real clips by ``REAL_SHARE``:
    the real centre counts most (unrelated real clips then average cosine about 0),
    the generated one enough that generated videos still spread apart."""
    w = REAL_SHARE
    mean = w * real.mean(axis=0) + (1 - w) * generated.mean(axis=0)
    r, g = real - mean, generated - mean
    cov = w * (r.T @ r) / len(r) + (1 - w) * (g.T @ g) / len(g)
    return mean, cov


def _whitening(
    cov: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(AXES, dims)`` leading principal directions of ``cov`` and their gains (see
    the module docstring)."""
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values, kind="stable")[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    # A fixed sign per direction (largest entry positive), so reruns write the same file.
    vectors *= np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    level = SHRINK * float(values.mean())
    rest = float(values[AXES:].mean())
    gains = np.sqrt((rest + level) / (values[:AXES] + level))
    return vectors[:, :AXES].T, gains


def _rounded(x: npt.NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(round(float(v), DIGITS) for v in x)


def _calibrate(
    real: npt.NDArray[np.float64],
    generated: npt.NDArray[np.float64],
    groups: tuple[tuple[str, int, float], ...],
) -> Calibration:
    mean, cov = _fit(real, generated)
    # The engine uses the rounded literals: the second stage is measured through them.
    first = Calibration(_rounded(mean), _rounded(_scales(np.sqrt(np.diag(cov)), groups)))
    ur = np.array([weighted_unit(f, first, groups) for f in real])
    ug = np.array([weighted_unit(f, first, groups) for f in generated])
    centre, ucov = _fit(ur, ug)
    axes, gains = _whitening(ucov)
    return attrs.evolve(
        first, centre=_rounded(centre), axes=_rounded(axes.ravel()), gains=_rounded(gains)
    )


def measure(
    real: list[tuple[Path, float]], generated: list[tuple[Path, float]]
) -> dict[str, tuple[float, ...]]:
    rv, ra = features(real)
    gv, ga = features(generated)
    out: dict[str, tuple[float, ...]] = {}
    for kind, cal in (
        ("VISUAL", _calibrate(rv, gv, VISUAL_GROUPS)),
        ("AUDIO", _calibrate(ra, ga, AUDIO_GROUPS)),
    ):
        for field in ("mean", "scale", "centre", "axes", "gains"):
            out[f"{kind}_{field.upper()}"] = getattr(cal, field)
    return out


def render(stats: dict[str, tuple[float, ...]], sources: int) -> str:
    lines = [
        '"""Calibration of the weights-free backend (generated file): per-feature centring',
        "and scale, then the centre and shrinkage whitening (leading axes and their gains)",
        "of the weighted unit-length descriptors; see ``tools/calibrate_engine.py``.",
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
        numbers = [repr(x) for x in values]
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
