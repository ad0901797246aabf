"""Fit marengo3.5's dimension ordering (a developer tool; writes into the package).

    python tools/fit_nesting.py [--videos 40] [--keep 96]

marengo3.5 answers ``embedding_dimension: d`` with the first ``d`` of its 512
values, so the engine orders them by decreasing information. This tool embeds
generated videos (seeds 3000+, never the benchmarks' seeds) with the default
backend, takes the principal directions of the uncentred second moment of the
visual and of the audio vectors (the directions that carry most of a vector's
length, hence of every dot product), keeps the first ``--keep`` and stores the
Householder reflections that rotate them onto the first axes, as float16, in
``aioembed/engine/_nesting.npz``. The rotation is orthogonal whatever the data,
so 512-value cosines never change; only how much a prefix keeps does.

Refit after changing a backend's features: a stale fit stays correct, just less
good at short prefixes (``python -m benchmarks.nested`` shows how much).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from aioembed import samples
from aioembed.engine import get_backend
from aioembed.engine._decode import iter_clips
from aioembed.engine._segments import fixed_spans
from aioembed.engine._v2models import V2_MODELS

OUT = Path(__file__).resolve().parents[1] / "aioembed" / "engine" / "_nesting.npz"


def _vectors(videos: int) -> dict[str, np.ndarray]:
    be = get_backend()
    model = V2_MODELS["marengo3.5"].backend_model
    rows: dict[str, list[np.ndarray]] = {"visual": [], "audio": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(3000, 3000 + videos):
            path = samples.make_video(
                Path(tmp) / f"{seed}.mp4",
                duration=12,
                width=320,
                height=180,
                seed=seed,
                transition="mixed",
            )
            for length in (2.0, 3.0, 6.0):
                for clip in iter_clips(path, fixed_spans(0, 12, length)):
                    rows["visual"].append(be.visual(clip.frames, clip.times, model, "visual"))
                    rows["audio"].append(be.audio(clip.audio, model, "audio"))
    return {k: np.stack(v).astype(np.float64) for k, v in rows.items()}


def householder(basis: np.ndarray) -> np.ndarray:
    """``(k, n)`` reflections ``w`` (unit) with ``H_k..H_1 u_i = +-e_i`` for the rows
    ``u_i`` of ``basis`` (orthonormal)."""
    a = basis.T.copy()  # (n, k)
    n, k = a.shape
    out = np.zeros((k, n))
    for j in range(k):
        x = a[j:, j]
        alpha = -np.copysign(np.linalg.norm(x), x[0])
        v = x.copy()
        v[0] -= alpha
        v /= np.linalg.norm(v)
        w = np.zeros(n)
        w[j:] = v
        a -= 2.0 * np.outer(w, w @ a)
        out[j] = w
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--keep", type=int, default=96)
    args = parser.parse_args()
    data = _vectors(args.videos)
    reflections = {}
    for option, x in data.items():
        moment = x.T @ x / len(x)
        values, vectors = np.linalg.eigh(moment)
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        share = np.cumsum(values) / values.sum()
        print(
            f"{option}: {len(x)} vectors; energy in the first 32/64/128/256 directions: "
            + " / ".join(f"{share[k - 1]:.3f}" for k in (32, 64, 128, 256))
        )
        reflections[option] = householder(vectors[:, : args.keep].T).astype(np.float16)
    np.savez(OUT, **reflections)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
