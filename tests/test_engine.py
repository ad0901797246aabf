"""The engine on tiny generated videos: segmentation, determinism, bad input, quality."""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from aioembed import samples
from aioembed._params import clip_spans
from aioembed.engine import (
    Backend,
    MediaError,
    MediaInfo,
    MediaLimits,
    Model,
    SegmentVector,
    available_backends,
    check_media,
    embed_audio,
    embed_image,
    embed_text,
    embed_video,
    get_backend,
    get_model,
    probe,
    register_backend,
)
from aioembed.engine._features import (
    AUDIO_CALIBRATION,
    AUDIO_DIMS,
    VISUAL_CALIBRATION,
    VISUAL_DIMS,
    decorrelate,
)

MODEL = "marengo3.0"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make (once per module) a sample video by keyword arguments; cached by them."""
    root = tmp_path_factory.mktemp("media")
    cache: dict[str, Path] = {}

    def make(ext: str = "mp4", **kw: object) -> Path:
        key = repr((ext, sorted(kw.items())))
        if key not in cache:
            name = hashlib.md5(key.encode()).hexdigest()[:10]
            cache[key] = samples.make_video(root / f"{name}.{ext}", **kw)  # type: ignore[arg-type]
        return cache[key]

    return make


def vecs(segments: list[SegmentVector], option: str, scope: str = "clip") -> np.ndarray:
    return np.stack([s.vector for s in segments if s.option == option and s.scope == scope])


# --------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize(
    ("start", "end", "length", "expected"),
    [
        (0, 12, 6, [(0, 6), (6, 12)]),
        (0, 13.9, 6, [(0, 6), (6, 12)]),  # 1.9 s remainder dropped
        (0, 14, 6, [(0, 6), (6, 12), (12, 14)]),  # exactly 2 s kept
        (0, 4, 6, [(0, 4)]),
        (0, 1.5, 6, []),
        (1.5, 9.5, 2, [(1.5, 3.5), (3.5, 5.5), (5.5, 7.5), (7.5, 9.5)]),
        (0.1, 20.1, 10, [(0.1, 10.1), (10.1, 20.1)]),
    ],
)
def test_clip_spans(
    start: float, end: float, length: float, expected: list[tuple[float, float]]
) -> None:
    assert clip_spans(start, end, length) == [(float(a), float(b)) for a, b in expected]


def test_segments_tile_the_range_and_order(media: Callable[..., Path]) -> None:
    path = media(duration=9.0, fps=10)
    segs = embed_video(path, model_name=MODEL, clip_length=4, scopes=("video", "clip"))
    got = [(s.option, s.scope, s.start, s.end) for s in segs]
    assert got == [
        ("visual", "clip", 0.0, 4.0),
        ("visual", "clip", 4.0, 8.0),
        ("visual", "video", 0.0, 9.0),
        ("audio", "clip", 0.0, 4.0),
        ("audio", "clip", 4.0, 8.0),
        ("audio", "video", 0.0, 9.0),
    ]  # the 1 s remainder gets no clip; the video segment spans the whole range
    for s in segs:
        assert s.vector.dtype == np.float32 and s.vector.shape == (512,)
        assert abs(float(np.linalg.norm(s.vector)) - 1.0) < 1e-5
        assert np.isfinite(s.vector).all()


def test_offsets_clamp_options_and_progress(media: Callable[..., Path]) -> None:
    path = media(duration=9.0, fps=10)
    calls: list[tuple[int, int]] = []
    segs = embed_video(
        path,
        model_name="Marengo-retrieval-2.7",
        start=2.5,
        end=100.0,  # past the end: clamped to the duration
        clip_length=3,
        options=["audio"],
        scopes=("clip", "video"),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert [(s.scope, s.start, s.end) for s in segs] == [
        ("clip", 2.5, 5.5),
        ("clip", 5.5, 8.5),
        ("video", 2.5, 9.0),  # the whole range: the 0.5 s remainder no clip holds included
    ]
    assert {s.option for s in segs} == {"audio"}
    assert all(s.vector.shape == (1024,) for s in segs)
    assert calls == [(1, 2), (2, 2)]


def test_offset_past_end_and_too_short_range(media: Callable[..., Path]) -> None:
    path = media(duration=4.0, fps=10)
    with pytest.raises(MediaError) as err:
        embed_video(path, model_name=MODEL, start=5.0)
    assert err.value.code == "parameter_invalid"
    with pytest.raises(MediaError) as err:
        embed_video(path, model_name=MODEL, start=3.0)
    assert err.value.code == "video_duration_too_short"


def test_misuse_raises_builtins(media: Callable[..., Path]) -> None:
    path = media(duration=4.0, fps=10)
    with pytest.raises(KeyError):
        embed_video(path, model_name="nope")
    with pytest.raises(KeyError):
        get_model("nope")
    with pytest.raises(ValueError):
        embed_video(path, model_name=MODEL, options=["visual-text"])
    with pytest.raises(ValueError):
        embed_video(path, model_name=MODEL, scopes=["frame"])
    with pytest.raises(KeyError):
        embed_video(path, model_name=MODEL, backend="no-such-backend")


# --------------------------------------------------------------------------- determinism


_HASH_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    from aioembed.engine import embed_video, embed_image, embed_text
    h = hashlib.sha256()
    for s in embed_video(sys.argv[1], model_name="marengo3.0", scopes=("clip", "video")):
        h.update(s.vector.tobytes())
    h.update(embed_image(sys.argv[2], model_name="marengo3.0").tobytes())
    h.update(embed_text("a red ball bounces", model_name="marengo3.0").tobytes())
    print(h.hexdigest())
    """
)


def test_bit_identical_across_runs_and_processes(
    media: Callable[..., Path], tmp_path: Path
) -> None:
    path = media(duration=6.0, fps=10, seed=3)
    image = samples.make_image(tmp_path / "x.png", seed=3)
    runs = []
    for _ in range(2):
        h = hashlib.sha256()
        for s in embed_video(path, model_name=MODEL, scopes=("clip", "video")):
            h.update(s.vector.tobytes())
        h.update(embed_image(image, model_name=MODEL).tobytes())
        h.update(embed_text("a red ball bounces", model_name=MODEL).tobytes())
        runs.append(h.hexdigest())
    assert runs[0] == runs[1]
    out = subprocess.run(
        [sys.executable, "-c", _HASH_SCRIPT, str(path), str(image)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == runs[0]


# --------------------------------------------------------------------------- audio edge cases


def test_no_audio_and_silent_audio_give_the_silence_vector(media: Callable[..., Path]) -> None:
    no_audio = embed_video(media(duration=4.0, fps=10, audio=False), model_name=MODEL)
    silent = embed_video(media(duration=4.0, fps=10, audio="silence"), model_name=MODEL)
    loud = embed_video(media(duration=4.0, fps=10), model_name=MODEL)
    a, b, c = (vecs(x, "audio")[0] for x in (no_audio, silent, loud))
    assert np.array_equal(a, b)
    assert np.isfinite(a).all() and abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert abs(float(a @ c)) < 1e-5  # silence is orthogonal to any sound
    # The visual vectors of the three files are the same content.
    assert float(vecs(no_audio, "visual")[0] @ vecs(loud, "visual")[0]) > 0.95


def test_embed_audio_segments_and_shared_space(media: Callable[..., Path], tmp_path: Path) -> None:
    wav = samples.make_audio(tmp_path / "a.wav", duration=25.0, seed=5)
    segs = embed_audio(wav, model_name=MODEL)
    assert [(s.start, s.end, s.scope, s.option) for s in segs] == [
        (0.0, 10.0, "clip", "audio"),
        (10.0, 20.0, "clip", "audio"),
        (20.0, 25.0, "clip", "audio"),
    ]
    short = samples.make_audio(tmp_path / "s.m4a", duration=1.5, seed=5)
    assert [(s.start, s.end) for s in embed_audio(short, model_name=MODEL)] == [(0.0, 1.5)]
    with pytest.raises(MediaError) as err:
        embed_audio(wav, model_name=MODEL, start_offset=30.0)
    assert err.value.code == "parameter_invalid"
    # A video's audio clip and the same sound embedded alone land together.
    video = media(duration=10.0, fps=10, seed=5)
    from_video = vecs(embed_video(video, model_name=MODEL, clip_length=10), "audio")[0]
    alone = samples.make_audio(tmp_path / "v.wav", duration=10.0, seed=5)
    other = samples.make_audio(tmp_path / "o.wav", duration=10.0, seed=6)
    same = float(from_video @ embed_audio(alone, model_name=MODEL)[0].vector)
    diff = float(from_video @ embed_audio(other, model_name=MODEL)[0].vector)
    assert same > 0.9 and same > diff + 0.3


# --------------------------------------------------------------------------- bad input


def _bad_files(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {
        "zero": tmp / "zero.mp4",
        "truncated": tmp / "truncated.mp4",
        "random": tmp / "random.mp4",
        "text": tmp / "notes.mp4",
        "audio_only": tmp / "audio.m4a",
        "missing": tmp / "missing.mp4",
    }
    files["zero"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])  # moov is at the end: gone
    files["random"].write_bytes(np.random.default_rng(0).bytes(50_000))
    files["text"].write_text("this is not a video\n" * 200)
    samples.make_audio(files["audio_only"], duration=5.0)
    return files


@pytest.mark.parametrize("kind", ["zero", "truncated", "random", "text", "audio_only", "missing"])
def test_bad_input_is_video_file_broken(
    media: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    path = _bad_files(tmp_path, media(duration=4.0, fps=10))[kind]
    with pytest.raises(MediaError) as err:
        probe(path)
    assert err.value.code == "video_file_broken"
    with pytest.raises(MediaError) as err:
        embed_video(path, model_name=MODEL)
    assert err.value.code == "video_file_broken"
    assert err.value.message


def test_corrupted_stream_does_not_hang(media: Callable[..., Path], tmp_path: Path) -> None:
    data = bytearray(media(duration=6.0, fps=10).read_bytes())
    rng = np.random.default_rng(1)
    # Scribble over the middle of the file (sample data), keep the header and index.
    for pos in rng.integers(len(data) // 8, len(data) * 6 // 10, size=300):
        data[pos] = int(rng.integers(0, 256))
    path = tmp_path / "scribbled.mp4"
    path.write_bytes(bytes(data))
    try:
        segs = embed_video(path, model_name=MODEL)
    except MediaError as exc:
        assert exc.code == "video_file_broken"
    else:
        assert all(np.isfinite(s.vector).all() for s in segs)


def test_media_error_is_picklable() -> None:
    err = MediaError("video_file_broken", "The video file is broken.")
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, MediaError)
    assert copy.args == ("video_file_broken", "The video file is broken.")
    assert (copy.code, copy.message) == (err.code, err.message)


def test_limits(media: Callable[..., Path]) -> None:
    ok = probe(media(duration=4.0, fps=10))  # exactly 4 s, exactly 360x360
    assert (ok.duration, ok.width, ok.height, ok.has_audio) == (4.0, 360, 360, True)
    check_media(ok, MediaLimits())
    short = probe(media(duration=3.0, fps=10))
    small = probe(media(duration=4.0, fps=10, width=320, height=240))
    for info, code in [(short, "video_duration_too_short"), (small, "video_resolution_too_low")]:
        with pytest.raises(MediaError) as err:
            check_media(info, MediaLimits())
        assert err.value.code == code
    base = {
        "fps": 30.0,
        "has_video": True,
        "has_audio": True,
        "video_codec": "h264",
        "audio_codec": "aac",
    }
    cases = [
        (MediaInfo(duration=7200.0, width=3840, height=2160, **base), None),
        (MediaInfo(duration=7200.5, width=640, height=360, **base), "video_duration_too_long"),
        (MediaInfo(duration=10, width=4096, height=2160, **base), "video_resolution_too_high"),
        (MediaInfo(duration=10, width=2160, height=3840, **base), None),  # portrait 4K
        (MediaInfo(duration=10, width=640, height=359, **base), "video_resolution_too_low"),
    ]
    for info, expected in cases:
        if expected is None:
            check_media(info, MediaLimits())
        else:
            with pytest.raises(MediaError) as err:
                check_media(info, MediaLimits())
            assert err.value.code == expected
    with pytest.raises(MediaError) as err:
        check_media(ok, MediaLimits(min_duration=5.0))
    assert err.value.code == "video_duration_too_short"


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("ext", ["mp4", "webm", "mkv", "mov"])
def test_container_formats(media: Callable[..., Path], ext: str) -> None:
    path = media(ext, duration=4.0, fps=10, seed=7)
    info = probe(path)
    assert info.has_video and info.has_audio and (info.width, info.height) == (360, 360)
    assert abs(info.duration - 4.0) < 0.1
    segs = embed_video(path, model_name=MODEL)
    reference = embed_video(media("mp4", duration=4.0, fps=10, seed=7), model_name=MODEL)
    for option in ("visual", "audio"):
        assert float(vecs(segs, option)[0] @ vecs(reference, option)[0]) > 0.9


def test_rotated_and_odd_sized(media: Callable[..., Path]) -> None:
    rotated = probe(media(duration=4.0, fps=10, width=480, height=360, rotate=90))
    assert (rotated.width, rotated.height, rotated.rotation) == (360, 480, 90)
    odd = media("mkv", duration=4.0, fps=10, width=375, height=363, codec="mpeg4")
    info = probe(odd)
    assert (info.width, info.height) == (375, 363)
    assert len(embed_video(odd, model_name=MODEL)) == 2


def test_variable_frame_rate(tmp_path: Path) -> None:
    import av

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width = stream.height = 360
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        t_ms = 0
        rng = np.random.default_rng(0)
        while t_ms < 5000:
            frame = av.VideoFrame.from_ndarray(samples.render_frame(2, t_ms / 1000), format="rgb24")
            frame.pts = t_ms
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
            t_ms += int(rng.choice([20, 33, 50, 100, 250]))
        for packet in stream.encode(None):
            out.mux(packet)
    info = probe(path)
    assert 4.5 < info.duration < 5.5 and not info.has_audio
    segs = embed_video(path, model_name=MODEL, clip_length=2)
    assert [(s.start, s.end) for s in segs if s.option == "visual"] == [(0, 2), (2, 4)]


# --------------------------------------------------------------------------- quality


def test_near_duplicates_beat_unrelated(media: Callable[..., Path], tmp_path: Path) -> None:
    src = media(duration=6.0, fps=10, seed=11)
    dup = samples.transform_video(
        src,
        tmp_path / "dup.mp4",
        size=(480, 480),
        crop=0.04,
        brightness=0.06,
        contrast=1.15,
        gain_db=-6,
        bitrate=250_000,
    )
    unrelated = [media(duration=6.0, fps=10, seed=s) for s in (12, 13, 14)]
    ref = embed_video(src, model_name=MODEL)
    near = embed_video(dup, model_name=MODEL)
    others = [embed_video(u, model_name=MODEL) for u in unrelated]
    for option in ("visual", "audio"):
        q = vecs(near, option)[0]
        same = float(q @ vecs(ref, option)[0])
        worst_other = max(float(q @ vecs(o, option)[0]) for o in others)
        assert same > 0.85, (option, same)
        assert same > worst_other + 0.25, (option, same, worst_other)


def test_unrelated_videos_share_no_direction(media: Callable[..., Path]) -> None:
    """A video vector is the mean of its clips' vectors: a direction common to every
    clip survives the mean while the rest cancels, and unrelated videos then look
    alike. The calibration's centre and shrinkage whitening take it out; without
    them these ten unrelated videos average 0.32 (visual) / 0.36 (audio) cosine,
    with them 0.17 / 0.19 (held-out real footage: 0.16 -> 0.08 visual)."""
    patterns = itertools.cycle(("static", "shapes", "shapes"))
    paths = [
        media(duration=6.0, width=160, height=90, fps=8, seed=seed, pattern=next(patterns))
        for seed in range(40, 50)
    ]
    runs = [embed_video(p, model_name=MODEL, clip_length=2.0, scopes=("video",)) for p in paths]
    for option in ("visual", "audio"):
        v = np.concatenate([vecs(r, option, "video") for r in runs]).astype(np.float64)
        gram = v @ v.T
        n = len(v)
        mean_unrelated = (gram.sum() - np.trace(gram)) / (n * (n - 1))
        assert abs(mean_unrelated) < 0.27, (option, mean_unrelated)


def test_calibration_fits_the_descriptors() -> None:
    """The generated calibration file matches the descriptors (a feature added
    without re-running ``tools/calibrate_engine.py`` would silently skip it)."""
    for cal, dims in ((VISUAL_CALIBRATION, VISUAL_DIMS), (AUDIO_CALIBRATION, AUDIO_DIMS)):
        centre, axes, gains = cal.arrays
        assert len(cal.mean) == len(cal.scale) == centre.size == axes.shape[1] == dims
        assert np.allclose(axes @ axes.T, np.eye(gains.size), atol=1e-6)
        assert gains.size and np.all((gains > 0) & (gains <= 1))
        # A point on the centre maps to zero; its axes are shrunk by their gains.
        assert np.allclose(decorrelate(centre, cal), 0)
        assert np.allclose(decorrelate(centre + axes[0], cal), gains[0] * axes[0])


def test_image_lands_near_its_clip(media: Callable[..., Path], tmp_path: Path) -> None:
    path = media(duration=8.0, fps=10, seed=21, pattern="static")
    clips = vecs(embed_video(path, model_name=MODEL, clip_length=2), "visual")
    png = samples.make_image(tmp_path / "f.png", seed=21, t=5.0)
    v = embed_image(png, model_name=MODEL)
    assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert int(np.argmax(clips @ v)) == 2  # the clip [4, 6)
    jpeg = samples.make_image(tmp_path / "f.jpg", seed=21, t=5.0)
    assert float(embed_image(jpeg.read_bytes(), model_name=MODEL) @ v) > 0.95
    with pytest.raises(MediaError) as err:
        embed_image(b"not an image at all", model_name=MODEL)
    assert err.value.code == "parameter_invalid"


def test_text_embedding() -> None:
    a = embed_text("A red ball bouncing on the floor", model_name=MODEL)
    b = embed_text("a red ball bounces on a floor", model_name=MODEL)
    c = embed_text("quarterly tax report spreadsheet", model_name=MODEL)
    assert a.shape == (512,) and a.dtype == np.float32
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > float(a @ c) + 0.3
    assert np.array_equal(a, embed_text("A red ball bouncing on the floor", model_name=MODEL))
    assert embed_text("!!!", model_name="Marengo-retrieval-2.7").shape == (1024,)
    with pytest.raises(ValueError):
        embed_text("  ", model_name=MODEL)


# --------------------------------------------------------------------------- the backend seam


class ConstantBackend:
    """A trivial second backend: every vector is the first axis (or the second for audio)."""

    name = "constant"
    sample_fps = 1.0
    frame_size = (16, 16)

    def __init__(self) -> None:
        self.frames_seen: list[tuple[int, int, int]] = []

    def _axis(self, model: Model, i: int) -> np.ndarray:
        v = np.zeros(model.dims, np.float32)
        v[i] = 1.0
        return v

    def visual(
        self, frames: np.ndarray, times: np.ndarray, model: Model, option: str
    ) -> np.ndarray:
        self.frames_seen.append(frames.shape[1:])
        return self._axis(model, 0)

    def audio(self, samples: np.ndarray, model: Model, option: str) -> np.ndarray:
        return self._axis(model, 1)

    def text(self, text: str, model: Model) -> np.ndarray:
        return self._axis(model, 2)

    def pool(
        self, vectors: np.ndarray, weights: np.ndarray, model: Model, option: str
    ) -> np.ndarray:
        return self._axis(model, 3)


def test_backend_registered_at_runtime(media: Callable[..., Path]) -> None:
    register_backend("test-constant", ConstantBackend, replace=True)
    assert "test-constant" in available_backends() and "features" in available_backends()
    backend = get_backend("test-constant")
    assert isinstance(backend, Backend) and isinstance(get_backend(), Backend)
    segs = embed_video(
        media(duration=4.0, fps=10),
        model_name=MODEL,
        scopes=("clip", "video"),
        backend="test-constant",
    )
    assert [int(np.argmax(s.vector)) for s in segs] == [0, 3, 1, 3]
    assert set(backend.frames_seen) == {(16, 16, 3)}  # the decoder honoured its hints
    assert int(np.argmax(embed_text("x", model_name=MODEL, backend="test-constant"))) == 2
    with pytest.raises(ValueError):
        register_backend("test-constant", ConstantBackend)


def test_backend_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution on sys.path, advertising the entry point.
    pkg = tmp_path / "fake_backend_pkg.py"
    pkg.write_text(
        textwrap.dedent(
            """
            import numpy as np

            class EchoBackend:
                name = "echo"
                sample_fps = 2.0
                frame_size = (8, 8)

                def _v(self, model, i):
                    v = np.zeros(model.dims, np.float32)
                    v[i] = 1.0
                    return v

                def visual(self, frames, times, model, option):
                    return self._v(model, 5)

                def audio(self, samples, model, option):
                    return self._v(model, 6)

                def text(self, text, model):
                    return self._v(model, 7)

                def pool(self, vectors, weights, model, option):
                    return self._v(model, 8)
            """
        )
    )
    dist = tmp_path / "fake_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[aioembed.backends]\necho-test = fake_backend_pkg:EchoBackend\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "echo-test" in available_backends()
    v = embed_text("hello", model_name="Marengo-retrieval-2.7", backend="echo-test")
    assert v.shape == (1024,) and int(np.argmax(v)) == 7


def test_samples_differ_by_seed(tmp_path: Path) -> None:
    a = samples.render_frame(1, 1.0)
    b = samples.render_frame(2, 1.0)
    assert a.shape == (360, 360, 3) and not np.array_equal(a, b)
    assert np.array_equal(a, samples.render_frame(1, 1.0))
    sa, sb = samples.render_audio(1, 2.0), samples.render_audio(2, 2.0)
    assert sa.dtype == np.float32 and np.abs(sa).max() <= 1.0 and not np.allclose(sa, sb)
    with pytest.raises(ValueError):
        samples.make_video(tmp_path / "x.mp4", pattern="nope")
    assert os.path.getsize(samples.make_video(tmp_path / "y.mp4", duration=2.0, fps=10)) > 1000


def test_start_offset_seeks_to_the_same_vectors(media: Callable[..., Path]) -> None:
    # A 2 s GOP, so a start offset really seeks instead of decoding from 0.
    path = media(duration=12.0, fps=10, seed=31, codec_options={"preset": "ultrafast", "g": "20"})
    whole = embed_video(path, model_name=MODEL, clip_length=3)
    late = embed_video(path, model_name=MODEL, start=6.0, clip_length=3)
    for option in ("visual", "audio"):
        a = vecs(whole, option)[2:]  # clips [6, 9) and [9, 12)
        b = vecs(late, option)
        assert a.shape == b.shape == (2, 512)
        assert np.all(np.sum(a * b, axis=1) > 0.999), option


def test_video_track_shorter_than_audio_holds_the_last_picture(tmp_path: Path) -> None:
    path = samples.make_video(tmp_path / "cover.mp4", duration=5.0, audio_duration=14.0, fps=10)
    assert probe(path).duration > 13.5
    segs = embed_video(path, model_name=MODEL, clip_length=6)
    assert [(s.option, s.start) for s in segs] == [
        ("visual", 0.0), ("visual", 6.0), ("visual", 12.0),
        ("audio", 0.0), ("audio", 6.0), ("audio", 12.0),
    ]  # fmt: skip
    visual, audio = vecs(segs, "visual"), vecs(segs, "audio")
    assert float(visual[1] @ visual[2]) > 0.99  # both hold the last picture
    assert float(audio[1] @ audio[2]) < 0.99  # while the sound goes on


def test_truncated_stream_is_broken(media: Callable[..., Path], tmp_path: Path) -> None:
    data = media("mkv", duration=12.0, fps=10, seed=9).read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) // 4])  # Matroska needs no index: it opens, then stops
    assert probe(path).duration > 11
    with pytest.raises(MediaError) as err:
        embed_video(path, model_name=MODEL)
    assert err.value.code == "video_file_broken"


def test_audio_only_options_skip_the_pictures(media: Callable[..., Path]) -> None:
    path = media(duration=8.0, fps=10, seed=4)
    full = embed_video(path, model_name=MODEL, clip_length=4)
    sound = embed_video(path, model_name=MODEL, clip_length=4, options=["audio"])
    assert np.array_equal(vecs(full, "audio"), vecs(sound, "audio"))
    mute = embed_video(media(duration=8.0, fps=10, seed=4, audio=False), model_name=MODEL,
                       clip_length=4, options=["audio"])  # fmt: skip
    silence = vecs(mute, "audio")
    assert silence.shape == (2, 512) and np.array_equal(silence[0], silence[1])
