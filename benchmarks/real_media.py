"""A real-media near-duplicate set for the engine, built from packaged photos and recordings.

    python -m benchmarks.real_media [--workers N] [--fresh]

No media file lives in the repository. The raw material ships in Debian and PyPI
packages, fetched through their ordinary clients into a cache outside the tree
(``$AIOEMBED_BENCH_CACHE``, default ``~/.cache/aioembed-bench``):

- photographs and artwork: Debian ``mate-backgrounds`` and ``gnome-backgrounds``,
  the sample images in the ``scikit-image``, ``matplotlib`` and ``pygame`` wheels
  (downloaded with ``pip download --no-deps``, unpacked, never installed);
- recorded speech: ``asterisk-core-sounds-en-wav`` (one speaker's voice prompts);
- synthetic speech: ``espeak-ng`` reading sentences of ``/usr/share/common-licenses``
  in several voices;
- music: the soundtracks of ``mu-cade-data``, ``torus-trooper-data``, ``a7xpg-data``
  and ``rrootage-data``.

Every source video is a slideshow of two photographs with camera motion (pans
and zooms), cuts or dissolves between them, and one soundtrack (recorded speech,
synthetic speech or music), 18 s at 24 fps, 640x360 or 1280x720, H.264 + AAC,
encoded with PyAV. Photographs and recordings are split by a hash of their name
into a **calibration** part (the engine's centring is fitted on it, see
``tools/calibrate_engine.py``) and an **evaluation** part (nothing is fitted on
it); no photograph or recording appears in both.

Each evaluation source gets the transforms in :data:`TRANSFORMS` (the ones
re-uploads have, plus a few more) and two hard negatives: ``re-edit`` (the same
photographs in another order with other motion, over *new* audio of the same
kind - the same speaker, voice or music track) and ``redub`` (the same soundtrack
over the photographs of another evaluation source, re-edited).

Everything is seeded (:data:`SEED`): the same packages give the same files. The
set is written once and described by ``manifest.json``; :func:`load` returns it
or raises :class:`Unavailable` saying what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

SEED = 15
VERSION = "v1"
FPS = 24
DURATION = 18.0
RATE = 48_000
SIZES = ((640, 360), (1280, 720))

CACHE = Path(os.environ.get("AIOEMBED_BENCH_CACHE", "~/.cache/aioembed-bench")).expanduser()

APT_PACKAGES = (
    "mate-backgrounds",
    "gnome-backgrounds",
    "ukui-wallpapers",
    "espeak-ng",
    "asterisk-core-sounds-en-wav",
    "mu-cade-data",
    "torus-trooper-data",
    "a7xpg-data",
    "rrootage-data",
)
WHEELS = ("scikit-image", "matplotlib", "pygame")
_WHEEL_IMAGES = re.compile(
    r"(skimage/data/[a-z_]+\.(png|jpg)|mpl-data/sample_data/grace_hopper\.jpg"
    r"|pygame/examples/data/fist\.png)$"
)
# Not photographs or too small to pan over: scans, micrographs, logos, text.
_SKIP_IMAGES = {"page", "text", "cell", "logo", "horse", "clock_motion", "moon", "fist"}
_PICTURE_DIRS = ("/usr/share/backgrounds", "/usr/share/backgrounds/mate", "/usr/share/backgrounds/gnome")
PER_SOURCE = 2  # photographs per source video
_SPEECH_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
_MUSIC_GLOBS = ("/usr/share/games/*/sounds/musics/*.ogg", "/usr/share/games/*/sounds/*.ogg")
_TEXTS = ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0")
_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us+f3", "en-gb+f2")

# name -> (description, source seconds per copy second (speed), source-time shift in s)
TRANSFORMS: dict[str, tuple[str, float, float]] = {
    "hflip": ("horizontal mirror", 1.0, 0.0),
    "letterbox": ("16:9 picture in a 4:3 frame, black bars top and bottom", 1.0, 0.0),
    "pillarbox": ("picture at 3/4 height in the same frame, grey bars on every side", 1.0, 0.0),
    "crop10": ("10 % of width and height cut (off-centre), scaled back", 1.0, 0.0),
    "noise": ("pink noise at 10 dB SNR, then -12 dB gain", 1.0, 0.0),
    "trim3": ("first 3 s cut", 1.0, 3.0),
    "speed1.1": ("1.1x speed (frames dropped, audio time-stretched, pitch kept)", 1.1, 0.0),
    "overlay": ("a logo and a lower-third banner burnt in", 1.0, 0.0),
    "reencode": ("half size, 250 kb/s video, 48 kb/s audio", 1.0, 0.0),
    "combo": ("mirror + 8 % crop + brightness/contrast + 20 dB SNR noise + 500 kb/s", 1.0, 0.0),
}
HARD_NEGATIVES = ("re-edit", "redub")


class Unavailable(RuntimeError):
    """The set cannot be built here (a package, a tool or the network is missing)."""


# --------------------------------------------------------------------------- fetching


def _installed(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return out.returncode == 0 and "install ok installed" in out.stdout


def fetch() -> list[str]:
    """Install the Debian packages and download the wheels; returns what is missing."""
    missing: list[str] = []
    if shutil.which("dpkg-query") is None:
        missing.extend(APT_PACKAGES)
    else:
        wanted = [p for p in APT_PACKAGES if not _installed(p)]
        if wanted and shutil.which("apt-get") and os.geteuid() == 0:
            print(f"apt-get install {' '.join(wanted)}", file=sys.stderr)
            subprocess.run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q",
                 "--no-install-recommends", *wanted],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                capture_output=True,
                check=False,
            )  # fmt: skip
        missing.extend(p for p in wanted if not _installed(p))
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for name in WHEELS:
        stem = name.replace("-", "_")
        if not any(wheels.glob(f"{stem}-*.whl")):
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
                 ":all:", "-d", str(wheels), name],
                capture_output=True,
                check=False,
            )  # fmt: skip
        found = sorted(wheels.glob(f"{stem}-*.whl"))
        if not found:
            missing.append(f"{name} (wheel)")
            continue
        target = CACHE / "raw" / stem
        if not target.exists():
            with zipfile.ZipFile(found[-1]) as zf:
                for member in zf.namelist():
                    if _WHEEL_IMAGES.search(member):
                        dest = target / Path(member).name
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(zf.read(member))
    return missing


# --------------------------------------------------------------------------- materials


def _part(name: str) -> str:
    h = int.from_bytes(hashlib.blake2b(f"{SEED}:{name}".encode(), digest_size=4).digest(), "little")
    return "calibration" if h % 2 == 0 else "evaluation"


def pictures() -> list[Path]:
    """Photographs and artwork, one per motif (no light/dark or size variants), sorted."""
    paths: list[Path] = []
    for root in _PICTURE_DIRS:
        top = Path(root)
        found = top.rglob("*") if top.name != "backgrounds" else top.glob("*")
        paths += sorted(p for p in found if p.suffix in (".jpg", ".png", ".webp"))
    paths += sorted((CACHE / "raw").rglob("*.png")) + sorted((CACHE / "raw").rglob("*.jpg"))
    seen: set[str] = set()
    out = []
    for p in paths:
        motif = re.sub(r"(-[dl]|_\d+x\d+|-no-logo|-(dark|light))$", "", p.stem.lower())
        motif = re.sub(r"^(mate-stripes|ubuntu-mate)-.*", r"\1", motif)
        if motif in seen or motif in _SKIP_IMAGES or "_right" in motif:
            continue
        seen.add(motif)
        if _usable(p):
            out.append(p)
    return out


def _usable(path: Path) -> bool:
    """Big enough to pan over and not blank (transparent PNGs decode as one colour)."""
    with av.open(str(path), metadata_errors="ignore") as c:
        frame = next(c.decode(video=0))
        if min(frame.width, frame.height) < 300:
            return False
        grey = frame.to_ndarray(width=64, height=64, format="gray").astype(np.float64)
    return bool(grey.std() >= 8.0)


def speech_prompts() -> list[Path]:
    return sorted(Path(_SPEECH_DIR).glob("*.wav")) if Path(_SPEECH_DIR).is_dir() else []


def music_tracks() -> list[Path]:
    out: set[Path] = set()
    for pattern in _MUSIC_GLOBS:
        out.update(Path("/").glob(pattern.lstrip("/")))
    return sorted(out)


def sentences() -> list[str]:
    text = " ".join(Path(t).read_text(errors="ignore") for t in _TEXTS if Path(t).exists())
    text = re.sub(r"\s+", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.;:])\s+", text) if 40 <= len(s.strip()) <= 300]


def load_picture(path: Path, max_side: int = 2400) -> npt.NDArray[np.uint8]:
    with av.open(str(path), metadata_errors="ignore") as c:
        frame = next(c.decode(video=0))
        w, h = frame.width, frame.height
        k = min(1.0, max_side / max(w, h))
        img = frame.to_ndarray(
            width=max(2, round(w * k)), height=max(2, round(h * k)), format="rgb24"
        )
    return np.asarray(img, np.uint8)


def load_audio(path: Path, start: float = 0.0, seconds: float | None = None) -> npt.NDArray[np.float32]:
    """Mono float32 at :data:`RATE` of ``[start, start + seconds)``."""
    chunks = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(path), metadata_errors="ignore") as c:
        for frame in c.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray()[0].copy())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray()[0].copy())
    x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    a = round(start * RATE)
    b = None if seconds is None else a + round(seconds * RATE)
    return x[a:b]


# --------------------------------------------------------------------------- soundtracks


def _fit(x: npt.NDArray[np.float32], seconds: float) -> npt.NDArray[np.float32]:
    n = round(seconds * RATE)
    out = np.zeros(n, np.float32)
    out[: min(n, x.size)] = x[:n]
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / peak * 0.7).astype(np.float32)


def recorded_speech(rng: np.random.Generator, prompts: list[Path], seconds: float) -> Any:
    parts, total = [], 0.0
    for i in rng.permutation(len(prompts)):
        x = load_audio(prompts[int(i)])
        gap = np.zeros(round(rng.uniform(0.15, 0.6) * RATE), np.float32)
        parts += [x / max(float(np.max(np.abs(x))), 1e-6), gap]
        total += (x.size + gap.size) / RATE
        if total >= seconds + 0.5:
            break
    return _fit(np.concatenate(parts), seconds)


def synthetic_speech(rng: np.random.Generator, lines: list[str], voice: str, seconds: float) -> Any:
    if shutil.which("espeak-ng") is None:
        raise Unavailable("espeak-ng is not installed")
    text = " ".join(lines[:20])
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        speed = str(int(rng.integers(140, 185)))
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", speed, "-w", str(wav), text[:1500]],
            check=True,
            capture_output=True,
        )
        x = load_audio(wav)
    return _fit(x, seconds)


def music(rng: np.random.Generator, track: Path, seconds: float, avoid: float | None = None) -> Any:
    with av.open(str(track), metadata_errors="ignore") as c:
        length = float(c.duration or 0) / 1e6
    span = max(length - seconds - 1.0, 0.0)
    start = float(rng.uniform(0, span))
    if avoid is not None and span > 2 * seconds:
        # A different passage of the same track (a hard negative), not an overlap.
        while abs(start - avoid) < seconds:
            start = float(rng.uniform(0, span))
    return _fit(load_audio(track, start, seconds), seconds), start


# --------------------------------------------------------------------------- pictures


def _smooth(u: float) -> float:
    return u * u * (3 - 2 * u)


class Shot:
    """One photograph with a camera move: a window of the output's aspect that pans/zooms."""

    def __init__(self, img: Any, size: tuple[int, int], rng: np.random.Generator) -> None:
        w, h = size
        ih, iw = img.shape[:2]
        # Pre-scale so that the widest window is about 1.25x the output: cheap crops.
        base = min(iw / w, ih / h)
        k = min(1.0, 1.25 / base)
        if k < 1.0:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            img = vf.to_ndarray(
                width=max(w, round(iw * k)), height=max(h, round(ih * k)), format="rgb24"
            )
        self.img = img
        ih, iw = img.shape[:2]
        full = min(iw / w, ih / h)  # largest window scale that fits
        zoom = rng.uniform(1.0, 1.35, size=2)
        if rng.random() < 0.5:
            zoom = zoom[::-1]
        self.rects = []
        for z in zoom:
            s = full / z
            ww, hh = w * s, h * s
            x = rng.uniform(0, iw - ww)
            y = rng.uniform(0, ih - hh)
            self.rects.append((x, y, ww, hh))
        self.size = size

    def frame(self, u: float) -> npt.NDArray[np.uint8]:
        u = _smooth(min(max(u, 0.0), 1.0))
        (x0, y0, w0, h0), (x1, y1, w1, h1) = self.rects
        x, y, ww, hh = (a + (b - a) * u for a, b in ((x0, x1), (y0, y1), (w0, w1), (h0, h1)))
        ih, iw = self.img.shape[:2]
        xa, ya = int(max(0, math.floor(x))), int(max(0, math.floor(y)))
        xb, yb = int(min(iw, math.ceil(x + ww))), int(min(ih, math.ceil(y + hh)))
        crop = np.ascontiguousarray(self.img[ya:yb, xa:xb])
        vf = av.VideoFrame.from_ndarray(crop, format="rgb24")
        out = vf.to_ndarray(width=self.size[0], height=self.size[1], format="rgb24")
        return np.asarray(out, np.uint8)


def slideshow(
    imgs: list[Any], size: tuple[int, int], rng: np.random.Generator, seconds: float
) -> Iterator[npt.NDArray[np.uint8]]:
    """Frames of a slideshow: shots of random length, cuts or dissolves between them."""
    n = len(imgs)
    cuts = np.sort(rng.uniform(0.25, 0.75, size=n - 1) + np.arange(n - 1)) * seconds / n
    bounds = [0.0, *cuts.tolist(), seconds]
    dissolve = [float(rng.uniform(0.4, 1.0)) if rng.random() < 0.5 else 0.0 for _ in range(n - 1)]
    shots = [Shot(img, size, rng) for img in imgs]
    for i in range(round(seconds * FPS)):
        t = i / FPS
        k = int(np.searchsorted(bounds, t, side="right")) - 1
        k = min(k, n - 1)
        # Each shot moves over its span plus the dissolve margins.
        a = bounds[k] - (dissolve[k - 1] / 2 if k > 0 else 0)
        b = bounds[k + 1] + (dissolve[k] / 2 if k < n - 1 else 0)
        frame = shots[k].frame((t - a) / (b - a))
        for j, d in ((k - 1, dissolve[k - 1] if k > 0 else 0), (k + 1, dissolve[k] if k < n - 1 else 0)):
            if d <= 0:
                continue
            edge = bounds[max(k, j)]
            if abs(t - edge) < d / 2:
                # Weight of the neighbour: 0.5 at the edge, fading to 0 at +-d/2.
                wgt = 0.5 - abs(t - edge) / d
                aj = bounds[j] - (dissolve[j - 1] / 2 if j > 0 else 0)
                bj = bounds[j + 1] + (dissolve[j] / 2 if j < n - 1 else 0)
                other = shots[j].frame((t - aj) / (bj - aj)).astype(np.float32)
                frame = (frame * (1 - wgt) + other * wgt + 0.5).astype(np.uint8)
        yield frame


# --------------------------------------------------------------------------- encoding


class Encoder:
    """H.264 + AAC (mono, 48 kHz) into MP4 with PyAV, frames and audio interleaved."""

    def __init__(
        self,
        path: Path,
        size: tuple[int, int],
        *,
        crf: int = 21,
        preset: str = "veryfast",
        bitrate: int | None = None,
        audio_bitrate: int = 128_000,
    ) -> None:
        self.c: Any = av.open(str(path), "w")
        self.v = self.c.add_stream("libx264", rate=FPS)
        self.v.width, self.v.height = size
        self.v.pix_fmt = "yuv420p"
        opts = {"preset": preset}
        if bitrate:
            self.v.bit_rate = bitrate
        else:
            opts["crf"] = str(crf)
        self.v.options = opts
        self.a = self.c.add_stream("aac", rate=RATE)
        self.a.layout = "mono"
        self.a.bit_rate = audio_bitrate
        self.index = 0

    def write(self, frames: Iterator[npt.NDArray[np.uint8]], audio: npt.NDArray[np.float32]) -> None:
        apos, chunk = 0, 1024 * 4
        for rgb in frames:
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f.pts = self.index
            self.index += 1
            for p in self.v.encode(f):
                self.c.mux(p)
            until = round(self.index / FPS * RATE)
            while apos < min(until, audio.size):
                apos = self._audio(audio, apos, chunk)
        while apos < audio.size:
            apos = self._audio(audio, apos, chunk)
        for stream in (self.v, self.a):
            for p in stream.encode(None):
                self.c.mux(p)
        self.c.close()

    def _audio(self, audio: npt.NDArray[np.float32], pos: int, chunk: int) -> int:
        part = np.clip(audio[pos : pos + chunk], -1, 1).astype(np.float32)
        f = av.AudioFrame.from_ndarray(part[None, :], format="flt", layout="mono")
        f.sample_rate = RATE
        f.pts = pos
        f.time_base = Fraction(1, RATE)
        for p in self.a.encode(f):
            self.c.mux(p)
        return pos + part.size


def decode(path: Path) -> tuple[Iterator[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]:
    """A video's frames (lazily, RGB) and its whole soundtrack (mono, :data:`RATE`)."""
    audio = load_audio(path)

    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                yield np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)

    return frames(), audio


# --------------------------------------------------------------------------- transforms


def pink_noise(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return np.asarray(x / np.sqrt(np.mean(x * x)), np.float64)


def add_noise(audio: Any, rng: np.random.Generator, snr_db: float, gain_db: float) -> Any:
    x = audio.astype(np.float64)
    # SNR against the signal's active level (frames above -40 dB of its peak).
    frames = x[: x.size // 1024 * 1024].reshape(-1, 1024)
    power = np.mean(frames**2, axis=1)
    active = power[power > power.max() * 1e-4]
    level = float(np.mean(active)) if active.size else float(np.mean(x * x))
    noise = pink_noise(rng, x.size) * math.sqrt(level / 10 ** (snr_db / 10))
    return ((x + noise) * 10 ** (gain_db / 20)).astype(np.float32)


def tempo(audio: Any, factor: float) -> Any:
    """Time-stretch by ``factor`` (faster, same pitch) with libavfilter's ``atempo``."""
    g = av.filter.Graph()
    src = g.add_abuffer(format="flt", sample_rate=RATE, layout="mono", time_base=Fraction(1, RATE))
    node = g.add("atempo", str(factor))
    sink = g.add("abuffersink")
    src.link_to(node)
    node.link_to(sink)
    g.configure()
    out: list[Any] = []

    def drain() -> None:
        while True:
            try:
                out.append(g.pull().to_ndarray()[0].copy())
            except (av.BlockingIOError, av.EOFError):
                return

    for i in range(0, audio.size, 4800):
        f = av.AudioFrame.from_ndarray(audio[None, i : i + 4800], format="flt", layout="mono")
        f.sample_rate, f.pts, f.time_base = RATE, i, Fraction(1, RATE)
        g.push(f)
        drain()
    g.push(None)
    drain()
    return np.concatenate(out).astype(np.float32)


def _resize(img: Any, w: int, h: int) -> Any:
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return np.asarray(vf.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA"))


def _overlay_layer(w: int, h: int) -> tuple[Any, Any]:
    """An RGBA-like (colour, alpha) layer: a logo top-right and a lower-third banner."""
    col = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w, 1), np.float32)
    lw, lh = w // 7, h // 9
    x0, y0 = w - lw - w // 30, h // 25
    col[y0 : y0 + lh, x0 : x0 + lw] = (230, 40, 60)
    alpha[y0 : y0 + lh, x0 : x0 + lw] = 0.85
    col[y0 + lh // 3 : y0 + 2 * lh // 3, x0 + lw // 6 : x0 + 5 * lw // 6] = (255, 255, 255)
    by = h - h // 5
    col[by : by + h // 8, w // 20 : w - w // 4] = (20, 20, 30)
    alpha[by : by + h // 8, w // 20 : w - w // 4] = 0.7
    for k in range(6):  # "text": white bars of uneven length
        xa = w // 20 + w // 40 + k * (w // 9)
        col[by + h // 32 : by + h // 14, xa : xa + w // 12 - (k % 3) * 6] = (240, 240, 240)
        alpha[by + h // 32 : by + h // 14, xa : xa + w // 12 - (k % 3) * 6] = 0.9
    return col, alpha


def transform(src: Path, dst: Path, name: str, rng: np.random.Generator) -> None:
    frames, audio = decode(src)
    first = next(frames)
    h, w = first.shape[:2]

    def all_frames() -> Iterator[Any]:
        yield first
        yield from frames

    size = (w, h)
    kwargs: dict[str, Any] = {"crf": 23, "preset": "ultrafast"}
    ops: list[Any] = []
    src_frames: Iterator[Any] = all_frames()
    if name == "hflip":
        ops.append(lambda f: f[:, ::-1])
    elif name == "letterbox":
        size = (w, w * 3 // 4 // 2 * 2)
        top = (size[1] - h) // 2

        def letterbox(f: Any) -> Any:
            out = np.zeros((size[1], w, 3), np.uint8)
            out[top : top + h] = f
            return out

        ops.append(letterbox)
    elif name == "pillarbox":
        iw, ih = w * 3 // 4 // 2 * 2, h * 3 // 4 // 2 * 2
        x0, y0 = (w - iw) // 2, (h - ih) // 2

        def pillarbox(f: Any) -> Any:
            out = np.full((h, w, 3), 48, np.uint8)
            out[y0 : y0 + ih, x0 : x0 + iw] = _resize(f, iw, ih)
            return out

        ops.append(pillarbox)
    elif name in ("crop10", "combo"):
        frac = 0.10 if name == "crop10" else 0.08
        cw, ch = round(w * (1 - frac)), round(h * (1 - frac))
        cx, cy = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        ops.append(lambda f: _resize(f[cy : cy + ch, cx : cx + cw], w, h))
        if name == "combo":
            ops.append(lambda f: f[:, ::-1])
            ops.append(
                lambda f: np.clip((f.astype(np.float32) - 128) * 1.15 + 140, 0, 255).astype(
                    np.uint8
                )
            )
            audio = add_noise(audio, rng, 20.0, -3.0)
            kwargs = {"bitrate": 500_000 * w // 640, "audio_bitrate": 64_000, "preset": "ultrafast"}
    elif name == "noise":
        audio = add_noise(audio, rng, 10.0, -12.0)
    elif name == "trim3":
        src_frames = (f for i, f in enumerate(all_frames()) if i >= 3 * FPS)
        audio = audio[3 * RATE :]
    elif name == "speed1.1":
        src_frames = _speed_frames(all_frames(), 1.1)
        audio = tempo(audio, 1.1)
    elif name == "overlay":
        col, alpha = _overlay_layer(w, h)
        ops.append(lambda f: (f * (1 - alpha) + col * alpha + 0.5).astype(np.uint8))
    elif name == "reencode":
        size = (w // 2 // 2 * 2, h // 2 // 2 * 2)
        ops.append(lambda f: _resize(f, size[0], size[1]))
        kwargs = {"bitrate": 250_000 * w // 640, "audio_bitrate": 48_000, "preset": "ultrafast"}
    else:
        raise ValueError(name)

    def out_frames() -> Iterator[Any]:
        for f in src_frames:
            for op in ops:
                f = op(f)
            yield f

    Encoder(dst, size, **kwargs).write(out_frames(), audio)


def _speed_frames(frames: Iterator[Any], factor: float) -> Iterator[Any]:
    k = 0
    for i, f in enumerate(frames):
        while math.floor(k * factor) == i:
            yield f
            k += 1


# --------------------------------------------------------------------------- the set


def _rng(*keys: object) -> np.random.Generator:
    digest = hashlib.blake2b(repr((SEED, *keys)).encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def plan() -> list[dict[str, Any]]:
    """The source videos: pictures, soundtrack kind and material, size; per part."""
    pics = pictures()
    prompts, tracks, lines = speech_prompts(), music_tracks(), sentences()
    if len(pics) < 18 or not prompts or not tracks or not lines:
        raise Unavailable(
            f"not enough material: {len(pics)} pictures, {len(prompts)} speech prompts, "
            f"{len(tracks)} music tracks, {len(lines)} sentences"
        )
    out = []
    for part in ("calibration", "evaluation"):
        mine = [p for p in pics if _part(p.name) == part]
        order = _rng("pictures", part).permutation(len(mine))
        groups = [
            [str(mine[int(i)]) for i in order[k : k + PER_SOURCE]]
            for k in range(0, len(order) - PER_SOURCE + 1, PER_SOURCE)
        ]
        my_prompts = [str(p) for p in prompts if _part(p.name) == part]
        my_tracks = [str(t) for t in tracks if _part(t.name) == part]
        my_lines = [s for s in lines if _part(s) == part]
        n = len(groups)
        for i, group in enumerate(groups):
            kind = ("speech", "tts", "music")[i % 3]
            # Each source draws on its own prompts and sentences: no recording or
            # sentence is heard in two sources.
            chunk = len(my_lines) // n
            out.append(
                {
                    "id": f"{part[:3]}{i:02d}",
                    "part": part,
                    "pictures": group,
                    "size": list(SIZES[1] if i % 4 == 1 else SIZES[0]),
                    "audio": kind,
                    "track": my_tracks[i % len(my_tracks)] if kind == "music" else None,
                    "voice": _VOICES[i % len(_VOICES)] if kind == "tts" else None,
                    "prompts": my_prompts[i::n],
                    "lines": my_lines[i * chunk : (i + 1) * chunk],
                }
            )
    return out


def _soundtrack(spec: dict[str, Any], variant: str, avoid: float | None = None) -> tuple[Any, float]:
    rng = _rng("audio", spec["id"], variant)
    # The source and its re-edit use disjoint halves of the source's material.
    half = 0 if variant == "source" else 1
    if spec["audio"] == "speech":
        pool = [Path(p) for p in spec["prompts"][half::2]]
        return recorded_speech(rng, pool, DURATION), 0.0
    if spec["audio"] == "tts":
        lines = spec["lines"]
        mine = lines[: len(lines) // 2] if half == 0 else lines[len(lines) // 2 :]
        return synthetic_speech(rng, mine, spec["voice"], DURATION), 0.0
    x, start = music(rng, Path(spec["track"]), DURATION, avoid)
    return x, start


def _render(spec: dict[str, Any], variant: str, pics: list[str], audio: Any, dst: Path) -> None:
    rng = _rng("pictures", spec["id"], variant)
    imgs = [load_picture(Path(p)) for p in pics]
    if variant != "source":
        imgs = [imgs[int(i)] for i in rng.permutation(len(imgs))]
    size = (int(spec["size"][0]), int(spec["size"][1]))
    Encoder(dst, size).write(slideshow(imgs, size, rng, DURATION), audio)


def build_source(job: tuple[dict[str, Any], dict[str, Any] | None, Path]) -> list[dict[str, Any]]:
    """Render one source and, for the evaluation part, its copies and hard negatives."""
    spec, partner, root = job
    entries = []
    src = root / f"{spec['id']}.mp4"
    audio, start = _soundtrack(spec, "source")
    if not src.exists():
        _render(spec, "source", spec["pictures"], audio, src)
    base = {"source": spec["id"], "part": spec["part"], "audio": spec["audio"]}
    entries.append({**base, "file": src.name, "kind": "source", "speed": 1.0, "shift": 0.0})
    if spec["part"] != "evaluation":
        return entries
    for name, (_, speed, shift) in TRANSFORMS.items():
        dst = root / f"{spec['id']}-{name}.mp4"
        if not dst.exists():
            transform(src, dst, name, _rng("transform", spec["id"], name))
        entries.append({**base, "file": dst.name, "kind": name, "speed": speed, "shift": shift})
    reedit = root / f"{spec['id']}-re-edit.mp4"
    if not reedit.exists():
        other, _ = _soundtrack(spec, "re-edit", avoid=start)
        _render(spec, "re-edit", spec["pictures"], other, reedit)
    entries.append({**base, "file": reedit.name, "kind": "re-edit", "speed": 1.0, "shift": 0.0})
    if partner is not None:
        redub = root / f"{spec['id']}-redub.mp4"
        if not redub.exists():
            _render(partner, "redub", partner["pictures"], audio, redub)
        entries.append(
            {**base, "file": redub.name, "kind": "redub", "speed": 1.0, "shift": 0.0,
             "pictures_of": partner["id"]}
        )  # fmt: skip
    return entries


def build(workers: int = 2, fresh: bool = False) -> Path:
    """Fetch the material and write the set (once); returns its directory."""
    root = CACHE / VERSION
    manifest = root / "manifest.json"
    if manifest.exists() and not fresh:
        return root
    missing = fetch()
    if missing:
        print(f"missing (the set will be smaller or unavailable): {', '.join(missing)}", file=sys.stderr)
    specs = plan()
    root.mkdir(parents=True, exist_ok=True)
    evaluation = [s for s in specs if s["part"] == "evaluation"]
    partners = {s["id"]: evaluation[(i + 1) % len(evaluation)] for i, s in enumerate(evaluation)}
    jobs = [(s, partners.get(s["id"]), root) for s in specs]
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(build_source, jobs))
    else:
        results = [build_source(j) for j in jobs]
    entries = [e for r in results for e in r]
    meta = {
        "version": VERSION,
        "seed": SEED,
        "duration": DURATION,
        "fps": FPS,
        "sources": [
            {k: s[k] for k in ("id", "part", "pictures", "size", "audio", "track", "voice")}
            for s in specs
        ],
        "files": entries,
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    manifest.write_text(json.dumps(meta, indent=1))
    return root


def load() -> tuple[Path, dict[str, Any]]:
    """The built set: its directory and manifest. Raises :class:`Unavailable` if not built."""
    root = CACHE / VERSION
    manifest = root / "manifest.json"
    if not manifest.exists():
        raise Unavailable(
            f"the real-media set is not built (run `python -m benchmarks.real_media`; "
            f"it fetches Debian and PyPI packages into {CACHE})"
        )
    return root, json.loads(manifest.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description="build the engine's real-media benchmark set")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fresh", action="store_true", help="rebuild the manifest")
    args = parser.parse_args()
    try:
        root = build(args.workers, args.fresh)
    except Unavailable as exc:
        print(f"real-media set unavailable: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _, meta = load()
    counts: dict[str, int] = {}
    for e in meta["files"]:
        counts[e["part"]] = counts.get(e["part"], 0) + 1
    print(f"{root}: {counts} files, built in {meta['build_seconds']} s")


if __name__ == "__main__":
    main()
