"""Small synthetic media for tests, the demo and the benchmarks: no binary fixtures.

Everything is generated from a ``seed`` and encoded through PyAV (its wheel bundles
FFmpeg), so a test can make exactly the file it needs in a few tens of milliseconds:

* :func:`make_video` - moving shapes over changing backgrounds with a soundtrack of
  tones, pulses and noise bursts; "scenes" change every 1.5-4 s so clips of one video
  differ from each other, and different seeds look and sound different.
* :func:`make_audio` - the same soundtrack alone (``.wav``, ``.m4a``, ``.mp3``, ``.ogg``...).
* :func:`make_image` - one rendered frame as PNG or JPEG.
* :func:`transform_video` - a near-duplicate of a file: re-encoded, resized, cropped,
  brightness/contrast shifted, trimmed, audio gain changed.

The container follows the file extension (``.mp4``, ``.mov``, ``.mkv``, ``.webm``);
codecs default to H.264 + AAC, or VP8 + Opus for WebM. Requires the ``engine`` extra
(PyAV and NumPy).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import av
import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_DISSOLVE",
    "SceneChange",
    "add_subtitles",
    "make_audio",
    "make_image",
    "make_video",
    "render_audio",
    "render_frame",
    "retag",
    "scene_changes",
    "transform_video",
]

StrPath = str | os.PathLike[str]
_AUDIO_RATE = 48_000
_PATTERNS = ("shapes", "static", "black")
_TRANSITIONS = ("cut", "dissolve", "mixed")
#: Longest dissolve: scenes last 1.5 s or more, so dissolves never overlap.
MAX_DISSOLVE = 1.5

# extension -> (video codec, audio codec)
_DEFAULT_CODECS: dict[str, tuple[str, str]] = {
    ".mp4": ("libx264", "aac"),
    ".m4v": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx", "libopus"),
    ".avi": ("mpeg4", "mp3"),
}
_AUDIO_CODECS: dict[str, str] = {
    ".wav": "pcm_s16le",
    ".m4a": "aac",
    ".mp3": "libmp3lame",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".flac": "flac",
    ".mka": "aac",
}
_IMAGE_CODECS: dict[str, str] = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg"}
_NOTES = 110.0 * 2.0 ** (np.arange(0, 48) / 12.0)  # A2 .. G#6


# --------------------------------------------------------------------------- content


@attrs.frozen
class _Shape:
    kind: int  # 0 rectangle, 1 disc, 2 stripes
    colour: tuple[float, float, float]
    size: float  # fraction of the frame's short side
    pos: tuple[float, float]  # centre, fractions of the frame
    vel: tuple[float, float]  # fractions of the frame per second
    freq: float  # stripes per shape width
    angle: float


@attrs.frozen
class _Scene:
    start: float
    end: float
    bg_a: tuple[float, float, float]
    bg_b: tuple[float, float, float]
    bg_angle: float
    shapes: tuple[_Shape, ...]
    notes: tuple[float, ...]
    tempo: float  # pulses per second
    noise_centre: float  # Hz of the noise bursts' band
    noise_rate: float  # bursts per second


def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    h = rng.uniform(0, 1)
    s = rng.uniform(0.45, 1.0)
    v = rng.uniform(0.35, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (r, g, b)


def _scenes(seed: int, duration: float) -> list[_Scene]:
    """The scene plan of a seed; it covers at least ``duration`` seconds."""
    rng = np.random.default_rng([seed, 0x5EED])
    scenes: list[_Scene] = []
    t = 0.0
    # Scenes are planned past any sensible duration so the plan for a seed never
    # depends on the requested duration (a longer video starts like a shorter one).
    horizon = max(duration, 1.0) + 5.0
    while t < horizon:
        length = float(rng.uniform(1.5, 4.0))
        shapes = tuple(
            _Shape(
                kind=int(rng.integers(0, 3)),
                colour=_colour(rng),
                size=float(rng.uniform(0.15, 0.45)),
                pos=(float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8))),
                vel=(float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.25, 0.25))),
                freq=float(rng.uniform(2, 8)),
                angle=float(rng.uniform(0, math.pi)),
            )
            for _ in range(int(rng.integers(2, 5)))
        )
        scenes.append(
            _Scene(
                start=t,
                end=t + length,
                bg_a=_colour(rng),
                bg_b=_colour(rng),
                bg_angle=float(rng.uniform(0, 2 * math.pi)),
                shapes=shapes,
                notes=tuple(float(f) for f in rng.choice(_NOTES, size=int(rng.integers(1, 4)))),
                tempo=float(rng.uniform(1.0, 6.0)),
                noise_centre=float(rng.uniform(500, 5000)),
                noise_rate=float(rng.uniform(0.5, 4.0)),
            )
        )
        t += length
    return scenes


def _scene_at(scenes: list[_Scene], t: float) -> _Scene:
    for scene in scenes:
        if t < scene.end:
            return scene
    return scenes[-1]


@attrs.frozen
class SceneChange:
    """A scene change of a generated file: ``time`` in seconds is a cut's instant or the
    midpoint of a dissolve (``length`` s long, 0 for a cut) or of a silence gap."""

    time: float
    kind: str  # "cut", "dissolve"; audio: "change", "silence"
    length: float = 0.0


def scene_changes(
    seed: int,
    duration: float,
    *,
    transition: str = "cut",
    dissolve: float = 1.0,
    audio: bool = False,
    gap: float = 0.0,
) -> list[SceneChange]:
    """Where the scenes of ``seed`` change within ``(0, duration)``: the ground truth of
    shot-boundary detection for :func:`make_video` (same ``transition``/``dissolve``)
    or, with ``audio=True``, of audio-change detection for :func:`make_audio` (same
    ``gap``): every change is spectral, and with ``gap`` > 0 about half of them are
    a silence of ``gap`` s centred on the change instead.
    """
    if transition not in _TRANSITIONS:
        raise ValueError(f"transition should be one of {', '.join(_TRANSITIONS)}")
    if not 0 < dissolve <= MAX_DISSOLVE:
        raise ValueError(f"dissolve should be within (0, {MAX_DISSOLVE}] s, got {dissolve!r}")
    # Its own stream: the scene plan of a seed does not depend on these choices.
    rng = np.random.default_rng([seed, 0xD155])
    out: list[SceneChange] = []
    for scene in _scenes(seed, duration)[1:]:
        coin = bool(rng.uniform() < 0.5)  # drawn for every change, used or not
        if scene.start >= duration:
            break
        if audio:
            silent = gap > 0 and coin
            out.append(SceneChange(scene.start, "silence" if silent else "change", gap * silent))
        elif transition == "dissolve" or (transition == "mixed" and coin):
            out.append(SceneChange(scene.start, "dissolve", dissolve))
        else:
            out.append(SceneChange(scene.start, "cut"))
    return out


def _render_at(
    canvas: _Canvas,
    scenes: list[_Scene],
    changes: list[SceneChange],
    t: float,
    pattern: str,
) -> npt.NDArray[np.uint8]:
    """The frame at ``t``, cross-fading the two scenes inside a dissolve."""
    for change in changes if pattern != "black" else ():
        half = change.length / 2
        if change.kind == "dissolve" and change.time - half <= t < change.time + half:
            before = _scene_at(scenes, change.time - 1e-6)
            after = _scene_at(scenes, change.time)
            alpha = (t - (change.time - half)) / change.length
            a = _render_scene(canvas, before, t, pattern).astype(np.float32)
            b = _render_scene(canvas, after, t, pattern).astype(np.float32)
            return (a * (1 - alpha) + b * alpha + 0.5).astype(np.uint8)
    return _render(canvas, scenes, t, pattern)


class _Canvas:
    """Coordinate grids and scene backgrounds reused for every frame of one size."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.short = float(min(width, height))
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.xs = xs
        self.ys = ys
        self._backgrounds: dict[int, npt.NDArray[np.uint8]] = {}

    def background(self, scene: _Scene) -> npt.NDArray[np.uint8]:
        key = id(scene)
        bg = self._backgrounds.get(key)
        if bg is None:
            x, y = self.xs / self.width, self.ys / self.height
            ramp = np.cos(scene.bg_angle) * x + np.sin(scene.bg_angle) * y
            ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
            img = (
                np.asarray(scene.bg_a, np.float32)[None, None, :] * (1 - ramp[..., None])
                + np.asarray(scene.bg_b, np.float32)[None, None, :] * ramp[..., None]
            )
            bg = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
            # Two scenes at a time: frames come in order, and a dissolve shows two.
            while len(self._backgrounds) >= 2:
                del self._backgrounds[next(iter(self._backgrounds))]
            self._backgrounds[key] = bg
        return bg


def _render(canvas: _Canvas, scenes: list[_Scene], t: float, pattern: str) -> npt.NDArray[np.uint8]:
    if pattern == "black":
        return np.zeros((canvas.height, canvas.width, 3), np.uint8)
    return _render_scene(canvas, _scene_at(scenes, t), t, pattern)


def _render_scene(
    canvas: _Canvas, scene: _Scene, t: float, pattern: str
) -> npt.NDArray[np.uint8]:
    h, w = canvas.height, canvas.width
    local = t - scene.start if pattern == "shapes" else 0.0
    img = canvas.background(scene).copy()
    for shape in scene.shapes:
        # Bounce inside the frame: a triangle wave of the unbounded position.
        cx = _bounce(shape.pos[0] + shape.vel[0] * local) * w
        cy = _bounce(shape.pos[1] + shape.vel[1] * local) * h
        r = shape.size * canvas.short / 2
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, w)
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        colour = (np.asarray(shape.colour) * 255 + 0.5).astype(np.uint8)
        region = img[y0:y1, x0:x1]
        if shape.kind == 0:
            region[...] = colour
            continue
        dx = canvas.xs[y0:y1, x0:x1] - cx
        dy = canvas.ys[y0:y1, x0:x1] - cy
        if shape.kind == 1:
            region[dx * dx + dy * dy <= r * r] = colour
        else:
            phase = (np.cos(shape.angle) * dx + np.sin(shape.angle) * dy) / (2 * r)
            mask = np.sin(2 * math.pi * shape.freq * phase + 3 * local) > 0
            region[mask] = colour
    return img


def _bounce(p: float) -> float:
    p = p % 2.0
    return p if p <= 1.0 else 2.0 - p


def render_frame(
    seed: int, t: float, *, width: int = 360, height: int = 360, pattern: str = "shapes"
) -> npt.NDArray[np.uint8]:
    """The RGB frame (``(height, width, 3)`` uint8) that :func:`make_video` shows at ``t`` s."""
    _check_pattern(pattern)
    return _render(_Canvas(width, height), _scenes(seed, t + 1), t, pattern)


def render_audio(
    seed: int,
    duration: float,
    *,
    rate: int = _AUDIO_RATE,
    silent: bool = False,
    gain_db: float = 0.0,
    gap: float = 0.0,
) -> npt.NDArray[np.float32]:
    """The mono soundtrack of ``seed`` as float32 samples in [-1, 1]; ``gap`` > 0
    silences about half of the scene changes for ``gap`` s (see :func:`scene_changes`)."""
    n = round(duration * rate)
    if silent or n == 0:
        return np.zeros(n, np.float32)
    scenes = _scenes(seed, duration)
    rng = np.random.default_rng([seed, 0xA0D10])
    t = np.arange(n, dtype=np.float64) / rate
    out = np.zeros(n, np.float64)
    for scene in scenes:
        a, b = int(scene.start * rate), min(int(scene.end * rate), n)
        if a >= n:
            break
        tt = t[a:b]
        local = tt - scene.start
        pulse = 0.55 + 0.45 * np.cos(2 * math.pi * scene.tempo * local) ** 2
        tone = sum(np.sin(2 * math.pi * f * tt) * (0.8**k) for k, f in enumerate(scene.notes))
        # Band-limited noise bursts: white noise through a resonator at noise_centre.
        noise = rng.standard_normal(b - a)
        spec = np.fft.rfft(noise)
        freqs = np.fft.rfftfreq(b - a, 1 / rate)
        spec *= np.exp(-0.5 * ((freqs - scene.noise_centre) / (0.25 * scene.noise_centre)) ** 2)
        noise = np.fft.irfft(spec, b - a)
        noise /= max(float(np.abs(noise).max()), 1e-9)
        bursts = (np.sin(2 * math.pi * scene.noise_rate * local) > 0.6).astype(np.float64)
        # Short fades at scene boundaries avoid clicks.
        fade = np.minimum(1.0, np.minimum(local, scene.end - tt) / 0.01)
        out[a:b] = fade * (0.25 * tone * pulse + 0.2 * noise * bursts)
    if gap > 0:
        for change in scene_changes(seed, duration, audio=True, gap=gap):
            if change.kind == "silence":
                a = max(round((change.time - gap / 2) * rate), 0)
                out[a : round((change.time + gap / 2) * rate)] = 0.0
    out *= 10 ** (gain_db / 20)
    return np.clip(out, -1, 1).astype(np.float32)


def _check_pattern(pattern: str) -> None:
    if pattern not in _PATTERNS:
        raise ValueError(f"pattern should be one of {', '.join(_PATTERNS)}, got {pattern!r}")


# --------------------------------------------------------------------------- encoding


def _video_options(codec: str, bitrate: int | None) -> dict[str, str]:
    if codec == "libx264":
        opts = {"preset": "ultrafast", "tune": "zerolatency"}
        if bitrate is None:
            opts["crf"] = "23"
        return opts
    if codec in ("libvpx", "libvpx-vp9"):
        opts = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        if bitrate is None:
            opts.update({"crf": "10", "b": "1M"})
        return opts
    return {}


def _add_audio_stream(container: Any, codec: str, rate: int) -> Any:
    if codec in ("libopus", "opus"):
        rate = 48_000
    stream = container.add_stream(codec, rate=rate)
    stream.layout = "mono"
    if codec == "aac":
        stream.bit_rate = 96_000
    return stream


def _audio_frames(
    samples: npt.NDArray[np.float32], rate: int, chunk: int = 4800
) -> Iterator[tuple[float, Any]]:
    for i in range(0, len(samples), chunk):
        part = samples[i : i + chunk]
        frame = av.AudioFrame.from_ndarray(part[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = Fraction(1, rate)
        yield (i + len(part)) / rate, frame


class _Writer:
    """Interleaves video and audio into one container as frames arrive."""

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        fps: float,
        codec: str | None,
        audio_codec: str | None,
        bitrate: int | None,
        audio: bool,
        rotate: int,
        codec_options: dict[str, str] | None = None,
    ) -> None:
        ext = path.suffix.lower()
        vcodec, acodec = _DEFAULT_CODECS.get(ext, ("libx264", "aac"))
        self.container: Any = av.open(str(path), mode="w")
        try:
            rate = Fraction(fps).limit_denominator(1001)
            vs: Any = self.container.add_stream(codec or vcodec, rate=rate)
            vs.width, vs.height = width, height
            vs.pix_fmt = "yuv420p"
            if bitrate is not None:
                vs.bit_rate = bitrate
            vs.options = (
                dict(codec_options)
                if codec_options is not None
                else _video_options(codec or vcodec, bitrate)
            )
            if rotate:
                vs.set_display_rotation(rotate)
            self.video: Any = vs
            self.audio = (
                _add_audio_stream(self.container, audio_codec or acodec, _AUDIO_RATE)
                if audio
                else None
            )
        except BaseException:
            self.container.close()
            raise

    def video_frame(self, rgb: npt.NDArray[np.uint8], index: int) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = index
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def audio_frame(self, frame: Any) -> None:
        assert self.audio is not None
        for packet in self.audio.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.video.encode(None):
                self.container.mux(packet)
            if self.audio is not None:
                for packet in self.audio.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()


def _write(
    path: Path,
    frames: Iterator[tuple[float, npt.NDArray[np.uint8]]],
    samples: npt.NDArray[np.float32] | None,
    *,
    width: int,
    height: int,
    fps: float,
    codec: str | None,
    audio_codec: str | None,
    bitrate: int | None,
    rotate: int = 0,
    codec_options: dict[str, str] | None = None,
) -> None:
    writer = _Writer(
        path,
        width=width,
        height=height,
        fps=fps,
        codec=codec,
        audio_codec=audio_codec,
        bitrate=bitrate,
        audio=samples is not None,
        rotate=rotate,
        codec_options=codec_options,
    )
    try:
        audio_iter = iter(_audio_frames(samples, _AUDIO_RATE)) if samples is not None else iter(())
        pending = next(audio_iter, None)
        for index, (t, rgb) in enumerate(frames):
            writer.video_frame(rgb, index)
            # Keep audio up to this frame's time so the file is interleaved.
            while pending is not None and pending[0] <= t + 1 / fps:
                writer.audio_frame(pending[1])
                pending = next(audio_iter, None)
        while pending is not None:
            writer.audio_frame(pending[1])
            pending = next(audio_iter, None)
    finally:
        writer.close()


def make_video(
    path: StrPath,
    *,
    duration: float = 6.0,
    width: int = 360,
    height: int = 360,
    fps: float = 15,
    seed: int = 0,
    audio: bool | str = True,
    codec: str | None = None,
    audio_codec: str | None = None,
    bitrate: int | None = None,
    pattern: str | None = None,
    rotate: int = 0,
    codec_options: dict[str, str] | None = None,
    audio_duration: float | None = None,
    transition: str = "cut",
    dissolve: float = 1.0,
) -> Path:
    """Encode a synthetic video of ``seed`` and return its path.

    ``duration`` in seconds, ``fps`` frames per second. ``audio``: ``True`` for the
    seed's soundtrack, ``"silence"`` for a silent audio track, ``False`` for no audio
    stream. ``pattern``: ``"shapes"`` (default, moving), ``"static"`` (scenes change
    but nothing moves) or ``"black"``. ``codec``/``audio_codec`` override the
    container's defaults (H.264 + AAC; VP8 + Opus for ``.webm``); ``bitrate`` in
    bits/s (default: constant quality). ``rotate`` sets display-matrix rotation
    metadata (degrees). ``codec_options`` replace the video encoder's options
    (default for H.264: ``preset=ultrafast``, fast to make). ``audio_duration``
    makes the soundtrack longer or shorter than the pictures (seconds).
    ``transition``: how scenes change, ``"cut"``, ``"dissolve"`` (cross-fades of
    ``dissolve`` s centred on the change) or ``"mixed"`` (about half each);
    :func:`scene_changes` gives the ground truth. Raises :class:`ValueError` for a
    bad ``pattern``, ``audio``, ``transition`` or ``dissolve``.
    """
    path = Path(path)
    pattern = pattern or "shapes"
    _check_pattern(pattern)
    if audio not in (True, False, "silence"):
        raise ValueError(f"audio should be True, False or 'silence', got {audio!r}")
    n_frames = max(1, round(duration * fps))
    scenes = _scenes(seed, duration)
    changes = scene_changes(seed, duration, transition=transition, dissolve=dissolve)
    canvas = _Canvas(width, height)
    frames = (
        (i / fps, _render_at(canvas, scenes, changes, i / fps, pattern)) for i in range(n_frames)
    )
    sound_seconds = n_frames / fps if audio_duration is None else audio_duration
    samples = render_audio(seed, sound_seconds, silent=audio == "silence") if audio else None
    _write(
        path,
        frames,
        samples,
        width=width,
        height=height,
        fps=fps,
        codec=codec,
        audio_codec=audio_codec,
        bitrate=bitrate,
        rotate=rotate,
        codec_options=codec_options,
    )
    return path


def make_audio(
    path: StrPath,
    *,
    duration: float = 6.0,
    seed: int = 0,
    gain_db: float = 0.0,
    silent: bool = False,
    codec: str | None = None,
    gap: float = 0.0,
) -> Path:
    """Encode the soundtrack of ``seed`` alone (no video stream); codec by extension.
    ``gap``: silences at about half of the scene changes (see :func:`scene_changes`)."""
    path = Path(path)
    samples = render_audio(seed, duration, silent=silent, gain_db=gain_db, gap=gap)
    codec = codec or _AUDIO_CODECS.get(path.suffix.lower(), "aac")
    container: Any = av.open(str(path), mode="w")
    try:
        stream = _add_audio_stream(container, codec, _AUDIO_RATE)
        for _, frame in _audio_frames(samples, _AUDIO_RATE):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return path


def encode_image(rgb: npt.NDArray[np.uint8], path: StrPath) -> Path:
    """Write an RGB array as PNG or JPEG (by extension) through PyAV."""
    path = Path(path)
    codec = _IMAGE_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"image path should end in .png, .jpg or .jpeg, got {path.name!r}")
    h, w = rgb.shape[:2]
    container: Any = av.open(str(path), mode="w", format="image2")
    try:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb24" if codec == "png" else "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        container.close()
    return path


def make_image(
    path: StrPath,
    *,
    seed: int = 0,
    t: float = 1.0,
    width: int = 360,
    height: int = 360,
) -> Path:
    """Write the frame :func:`make_video` with ``seed`` shows at ``t`` s as PNG/JPEG."""
    return encode_image(render_frame(seed, t, width=width, height=height), path)


# --------------------------------------------------------------------------- near-duplicates


def retag(src: StrPath, dst: StrPath, title: str) -> Path:
    """Copy ``src`` to ``dst`` with a new container title, without re-encoding.

    The result has other bytes (another content hash) but the same pictures and
    sound, so batches of distinct files cost one encode, not one each.
    """
    dst = Path(dst)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata["title"] = title
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def _srt(cues: Sequence[tuple[float, float, str]]) -> bytes:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        h, m, sec = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
        return f"{h:02d}:{m:02d}:{sec:02d},{ms % 1000:03d}"

    blocks = [f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n" for i, (a, b, text) in enumerate(cues, 1)]
    return "\n".join(blocks).encode("utf-8")


def add_subtitles(
    src: StrPath,
    dst: StrPath,
    *tracks: Sequence[tuple[float, float, str]],
    default: int | None = None,
) -> Path:
    """Copy ``src`` to ``dst`` (Matroska: end it in ``.mkv``) with one SubRip subtitle
    stream per track of ``(start, end, text)`` cues, without re-encoding.

    ``default``: index of the track flagged *default* (none by default). PyAV muxes
    subtitle packets demuxed from an in-memory ``.srt``, as ``ffmpeg -i a.srt -c copy``
    would.
    """
    dst = Path(dst)
    inputs: list[Any] = [av.open(str(src))]
    try:
        inputs += [av.open(io.BytesIO(_srt(cues)), format="srt") for cues in tracks]
        with av.open(str(dst), "w") as out:
            streams = {
                (i, s.index): out.add_stream_from_template(s)
                for i, inp in enumerate(inputs)
                for s in inp.streams
            }
            if default is not None:
                streams[(default + 1, 0)].disposition = av.stream.Disposition.default
            for i, inp in enumerate(inputs):
                for packet in inp.demux():
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = streams[(i, packet.stream.index)]
                    out.mux(packet)
    finally:
        for inp in inputs:
            inp.close()
    return dst


def _decode_all(
    src: StrPath, trim_start: float
) -> tuple[list[npt.NDArray[np.uint8]], list[npt.NDArray[np.float32]], float, bool]:
    """Every RGB frame from ``trim_start`` on and the whole mono audio of ``src``,
    with its frame rate and whether it has audio (test media are small)."""
    with av.open(str(src)) as inp:
        vstream = inp.streams.video[0]
        src_fps = float(vstream.average_rate or 25)
        has_audio = bool(inp.streams.audio)
        frames: list[npt.NDArray[np.uint8]] = []
        chunks: list[npt.NDArray[np.float32]] = []
        resampler = av.AudioResampler(format="flt", layout="mono", rate=_AUDIO_RATE)
        streams = [vstream] + ([inp.streams.audio[0]] if has_audio else [])
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    if (frame.time or 0.0) >= trim_start - 1e-6:
                        frames.append(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8))
                elif isinstance(frame, av.AudioFrame):
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray()[0].copy())
        if has_audio:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0].copy())
    return frames, chunks, src_fps, has_audio


def transform_video(
    src: StrPath,
    dst: StrPath,
    *,
    size: tuple[int, int] | None = None,
    crop: float = 0.0,
    brightness: float = 0.0,
    contrast: float = 1.0,
    trim_start: float = 0.0,
    gain_db: float = 0.0,
    codec: str | None = None,
    audio_codec: str | None = None,
    bitrate: int | None = None,
    fps: float | None = None,
) -> Path:
    """Write a near-duplicate of ``src`` to ``dst`` (container by extension).

    ``crop``: fraction cut from each side before resizing (0.05 = 5 %). ``size``:
    output ``(width, height)`` (default: the cropped size, rounded to even).
    ``brightness`` is added to pixel values in [0, 1] and ``contrast`` scales them
    around 0.5. ``trim_start`` drops the first seconds of video and audio. ``gain_db``
    scales the audio. Video and audio are decoded once and re-encoded.
    """
    dst = Path(dst)
    frames, chunks, src_fps, has_audio = _decode_all(src, trim_start)
    out_fps = fps or src_fps
    h0, w0 = frames[0].shape[:2]
    cy, cx = round(h0 * crop), round(w0 * crop)
    out_w, out_h = size or ((w0 - 2 * cx) // 2 * 2, (h0 - 2 * cy) // 2 * 2)
    samples: npt.NDArray[np.float32] | None = None
    if has_audio:
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        audio = audio[round(trim_start * _AUDIO_RATE) :] * np.float32(10 ** (gain_db / 20))
        samples = np.clip(audio, -1, 1).astype(np.float32)

    def convert() -> Iterator[tuple[float, npt.NDArray[np.uint8]]]:
        step = src_fps / out_fps
        n_out = int(len(frames) / step)
        for i in range(n_out):
            img = frames[min(int(i * step), len(frames) - 1)][
                cy : h0 - cy or None, cx : w0 - cx or None
            ]
            if brightness or contrast != 1.0:
                x = img.astype(np.float32) / 255
                x = (x - 0.5) * contrast + 0.5 + brightness
                img = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
            if img.shape[1] != out_w or img.shape[0] != out_h:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                img = np.asarray(
                    vf.to_ndarray(width=out_w, height=out_h, format="rgb24", interpolation="AREA"),
                    np.uint8,
                )
            yield i / out_fps, img

    _write(
        dst,
        convert(),
        samples,
        width=out_w,
        height=out_h,
        fps=out_fps,
        codec=codec,
        audio_codec=audio_codec,
        bitrate=bitrate,
    )
    return dst
