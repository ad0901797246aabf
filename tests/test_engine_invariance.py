"""The default backend's invariances: mirror, letterbox/pillarbox bars, background noise.

Each test feeds the backend what the decoder would hand it for a copy and for
its source (frames decoded from a generated video, its soundtrack) and checks
that the copy lands on its source, and nearer to it than to other videos.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from aioembed import samples
from aioembed._params import clip_spans
from aioembed.engine import get_backend, get_model
from aioembed.engine._decode import iter_clips
from aioembed.engine._features import content_box, mirror_invariant, visual_features

av = pytest.importorskip("av")

MODEL = get_model("marengo3.0")


def _clips(path: Path, size: tuple[int, int]) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]:
    be = get_backend()
    spans = clip_spans(0.0, 6.0, 6.0)
    return [(c.frames, c.audio) for c in iter_clips(path, spans, sample_fps=be.sample_fps, frame_size=size)]


def _scale(frames: npt.NDArray[np.uint8], w: int, h: int) -> npt.NDArray[np.uint8]:
    return np.stack(
        [
            av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").to_ndarray(
                width=w, height=h, format="rgb24", interpolation="AREA"
            )
            for f in frames
        ]
    )


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]:
    """Frames at 160x90 (to pad and mirror before the backend's 64x64) and audio of 4 videos."""
    root = tmp_path_factory.mktemp("inv")
    out = {}
    for seed in (31, 32, 33, 34):
        path = samples.make_video(root / f"{seed}.mp4", duration=6.0, width=320, height=180, fps=10, seed=seed)
        out[seed] = _clips(path, (160, 90))[0]
    return out


def _visual(frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    be = get_backend()
    w, h = be.frame_size
    return be.visual(_scale(frames, w, h), np.zeros(len(frames)), MODEL, "visual")


def test_mirror_gives_the_same_descriptor(decoded: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]) -> None:
    frames = _scale(decoded[31][0], 64, 64)
    mirrored = np.ascontiguousarray(frames[:, :, ::-1])
    assert np.allclose(visual_features(frames), visual_features(mirrored), atol=1e-12)
    # The pooling itself: pairs become (mean, |difference| / 2), fixed points stay.
    f = np.arange(visual_features(frames).size, dtype=np.float64)
    g = mirror_invariant(f)
    assert g.shape == f.shape and not np.array_equal(g, f)
    assert np.array_equal(mirror_invariant(g), mirror_invariant(g))


def test_bars_are_found_and_cut(decoded: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]) -> None:
    frames = decoded[32][0]
    x = frames.astype(np.float64) / 255
    assert content_box(x) == (0, 90, 0, 160)
    boxed = np.zeros((len(frames), 120, 160, 3), np.uint8)  # 16:9 in 4:3
    boxed[:, 15:105] = frames
    top, bottom, left, right = content_box(boxed.astype(np.float64) / 255)
    assert 15 <= top <= 17 and 103 <= bottom <= 105 and (left, right) == (0, 160)
    # A flat picture is not all bars.
    flat = np.full((3, 64, 64, 3), 90, np.uint8)
    assert content_box(flat.astype(np.float64) / 255) == (0, 64, 0, 64)


def test_padded_and_mirrored_copies_find_their_source(
    decoded: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]],
) -> None:
    refs = {seed: _visual(f) for seed, (f, _) in decoded.items()}
    for seed, (frames, _) in decoded.items():
        n = len(frames)
        letterbox = np.zeros((n, 120, 160, 3), np.uint8)
        letterbox[:, 15:105] = frames
        pillarbox = np.full((n, 90, 220, 3), 40, np.uint8)
        pillarbox[:, :, 30:190] = frames
        for copy in (letterbox, pillarbox, np.ascontiguousarray(frames[:, :, ::-1])):
            q = _visual(copy)
            same = float(q @ refs[seed])
            others = [float(q @ v) for s, v in refs.items() if s != seed]
            assert same > 0.9, same
            assert same > max(others) + 0.2, (same, others)


def _pink(n: int, seed: int) -> npt.NDArray[np.float64]:
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, spec.size))
    x = np.fft.irfft(spec, n)
    return np.asarray(x / np.sqrt(np.mean(x * x)))


def test_noisy_quieter_copy_finds_its_source(
    decoded: dict[int, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]],
) -> None:
    be = get_backend()
    refs = {seed: be.audio(a, MODEL, "audio") for seed, (_, a) in decoded.items()}
    for seed, (_, audio) in decoded.items():
        x = audio.astype(np.float64)
        noise = _pink(x.size, seed) * np.sqrt(np.mean(x * x) / 10)  # 10 dB SNR
        noisy = ((x + noise) * 10 ** (-12 / 20)).astype(np.float32)
        q = be.audio(noisy, MODEL, "audio")
        same = float(q @ refs[seed])
        others = [float(q @ v) for s, v in refs.items() if s != seed]
        assert same > max(others) + 0.2, (same, others)
