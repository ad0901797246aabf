"""The default, weights-free backend: hand-made descriptors, centred and projected.

Nothing here is learned. Each clip is described by interpretable features chosen
to survive what near-duplicates do to a video (re-encoding, resizing, crops,
letterbox and pillarbox bars, a horizontal mirror, brightness/contrast changes,
burnt-in overlays, a trim, a speed change, audio gain and background noise), then:

1. **standardised** with a fixed per-feature mean and scale
   (:mod:`aioembed.engine._calibration`, measured once on the calibration part of
   a real-media set - photographs and recordings from Debian and PyPI packages,
   see ``tools/calibrate_engine.py`` and ``benchmarks/real_media.py``), so that
   unrelated clips sit near cosine 0 instead of all near 1;
2. **weighted** per feature group (colour, layout, texture, motion...) and
   brought to unit length;
3. **decorrelated**: the calibration's centre of such vectors is taken off and
   their 32 leading principal directions are shrunk towards the average spread
   (a shrinkage whitening, measured on the same set), so that no few correlated
   directions carry a component shared by unrelated clips - which a video
   vector, the mean of its clips, would keep;
4. **projected** to the model's dimension by a fixed, seeded matrix with
   orthonormal columns (an isometry: cosines are kept exactly), and
5. **L2-normalised** and cast to float32.

Visual: frames arrive at 64x64. Flat, static lines at the picture's edges
(letterbox and pillarbox bars, a plain border) are found over the whole clip and
cut, and what is left is resampled to a 32x32 working grid, so a padded copy is
described like its source. Per frame: luminance layout (4x4 grid of per-frame
z-scored luma, so brightness/contrast cancel), colour layout (4x4 grid of
opponent colours over luma contrast), a chroma-weighted hue histogram, luma
quantiles, gradient-orientation histograms (2x2 cells x 8 orientations) and edge
density. A clip pools them over time (mean and standard deviation) and adds
motion statistics (frame differences per grid cell, global mean/std/max, colour
change). Finally every pair of features that a horizontal mirror swaps (left and
right cells, orientations θ and π - θ) becomes its mean and half its absolute
difference, so a mirrored copy has exactly the same descriptor. A still image
is a one-frame clip, so image -> clip search works.

Audio, per clip at 16 kHz: the stationary noise (the mean spectrum of the
quietest fifth of frames) is subtracted first and energies are floored 25 dB
under the clip's mean, so hiss or noise added to a copy mostly cancels. Then 40
log-mel bands relative to the clip's own level (gain cancels), weighted by frame
energy, their temporal variation and deltas, spectral centroid / flatness /
roll-off, a chroma (pitch-class) profile, onset rate and spectral flux, loudness
dynamics and envelope modulation. Silence (or no audio) gives a defined unit
vector orthogonal to every non-silent clip.

Text: a deterministic hashed embedding of word unigrams, bigrams and character
trigrams. It is **not cross-modal**: text vectors are comparable with text
vectors only, never with video, image or audio vectors.

Determinism: float64 throughout with fixed summation orders and no BLAS (einsum
without optimisation), seeds from the model name, a cast to float32 at the end,
so the same input gives bit-identical vectors on every run.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re

import attrs
import numpy as np
import numpy.typing as npt

from . import _calibration
from ._backend import Vector, mean_pool, normalise
from ._catalogue import CONTRACT_CATALOGUE, Model

__all__ = [
    "AUDIO_CALIBRATION",
    "AUDIO_GROUPS",
    "VISUAL_CALIBRATION",
    "VISUAL_GROUPS",
    "Calibration",
    "FeatureBackend",
    "audio_features",
    "decorrelate",
    "frame_features",
    "visual_features",
    "weighted_unit",
]

F64 = npt.NDArray[np.float64]

_GRID = 4
_WORK = 32  # frames are described on a 32x32 grid, after bars are cut
_HUE_BINS = 12
_ORIENT_BINS = 8
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

# (group name, size, weight). Weights are relative importances after
# standardisation; a group's weight is spread over its dims. They were set by
# hand, then nudged on a development set of generated near-duplicates (seeds
# 900+, not the benchmark's) towards a wider gap between near-duplicates and
# unrelated clips: structure (luma layout, gradients) and colour dominate,
# temporal variation and motion add detail.
_FRAME_GROUPS = (
    ("layout", _GRID * _GRID),
    ("colour_layout", 2 * _GRID * _GRID),
    ("hue", _HUE_BINS),
    ("quantiles", len(_QUANTILES)),
    ("gradients", 4 * _ORIENT_BINS),
    ("edges", 1),
)
FRAME_DIMS = sum(g[1] for g in _FRAME_GROUPS)
_MEAN_WEIGHTS = {
    "layout": 1.4,
    "colour_layout": 1.0,
    "hue": 1.0,
    "quantiles": 0.55,
    "gradients": 1.4,
    "edges": 0.3,
}
_STD_WEIGHTS = {
    "layout": 0.5,
    "colour_layout": 0.5,
    "hue": 0.5,
    "quantiles": 0.2,
    "gradients": 0.5,
    "edges": 0.15,
}
VISUAL_GROUPS = (
    *((f"mean_{n}", s, _MEAN_WEIGHTS[n]) for n, s in _FRAME_GROUPS),
    *((f"std_{n}", s, _STD_WEIGHTS[n]) for n, s in _FRAME_GROUPS),
    ("motion_grid", _GRID * _GRID, 0.6),
    ("motion_stats", 4, 0.4),
)
VISUAL_DIMS = sum(g[1] for g in VISUAL_GROUPS)

_N_FFT = 512
_HOP = 256
_N_MELS = 40
_RATE = 16_000
AUDIO_GROUPS = (
    ("mel_mean", _N_MELS, 1.5),
    ("mel_std", _N_MELS, 0.7),
    ("mel_delta", 10, 0.2),
    ("spectral", 6, 0.7),
    ("chroma", 12, 1.4),
    ("onsets", 3, 0.2),
    ("modulation", 6, 0.7),
    ("loudness", 3, 0.4),
)
AUDIO_DIMS = sum(g[1] for g in AUDIO_GROUPS)
# Spectral subtraction: the noise estimate is the mean of the quietest 1/this of frames.
_QUIET_SHARE = 5
# Mel energies are floored this far under the clip's mean band energy (-25 dB).
_FLOOR = 10 ** (-25 / 10)
# Below this RMS (about -70 dBFS) a clip counts as silent.
_SILENCE_RMS = 10 ** (-70 / 20)


# --------------------------------------------------------------------------- helpers


def _dot(a: F64, b: F64) -> F64:
    # einsum without optimize= never calls BLAS, whose threading can change
    # summation order; these products are small.
    out: F64 = np.einsum("...j,jk->...k", a, b, optimize=False)
    return out


def _soft_hist(values: F64, weights: F64, bins: int, period: float) -> F64:
    """Circular histogram with linear interpolation between bin centres, per row.

    ``values`` and ``weights`` are ``(n, m)``; returns ``(n, bins)`` summing to the
    rows' total weight.
    """
    n = values.shape[0]
    pos = values * (bins / period) - 0.5
    lo = np.floor(pos)
    frac = pos - lo
    lo_i = lo.astype(np.int64) % bins
    hi_i = lo_i + 1
    hi_i[hi_i == bins] = 0
    offsets = (np.arange(n) * bins)[:, None]
    whi = weights * frac
    # bincount adds in index order: a fixed summation order, and far faster than add.at.
    out: F64 = np.bincount(
        (lo_i + offsets).ravel(), (weights - whi).ravel(), minlength=n * bins
    ).astype(np.float64, copy=False)
    out += np.bincount((hi_i + offsets).ravel(), whi.ravel(), minlength=n * bins)
    return out.reshape(n, bins)


def _cells(x: F64, k: int) -> F64:
    """Mean over a ``k x k`` grid of the last two axes: ``(n, H, W) -> (n, k*k)``."""
    n, h, w = x.shape
    hh, ww = h // k * k, w // k * k
    out: F64 = x[:, :hh, :ww].reshape(n, k, hh // k, k, ww // k).mean(axis=(2, 4))
    return out.reshape(n, k * k)


# --------------------------------------------------------------------------- visual


# Bars and borders: a line (row or column) at an edge of the picture is a bar when it
# is flat (this spread of values along it, in [0, 1] units), does not change over the
# clip, and has the colour of the edge's first line. At most this share of the
# picture per side is taken as bars; more is a flat picture, not a bar.
_BAR_SPREAD = 0.035
_BAR_COLOUR = 0.06
_BAR_MAX = 0.4
_BAR_FRAMES = 4


def _edge_bars(lines: F64) -> tuple[int, int]:
    """Bars at the two ends of axis 1 of ``lines`` ``(n, L, M, 3)``: ``(first, last)`` counts."""
    length = lines.shape[1]
    mean = lines.mean(axis=2)  # (n, L, 3)
    spread = lines.std(axis=2).max(axis=(0, 2))
    drift = np.abs(mean - mean[:1]).max(axis=(0, 2))
    flat = (spread < _BAR_SPREAD) & (drift < _BAR_SPREAD)

    def run(order: range) -> int:
        ref = mean[:, order[0]]
        k = 0
        for i in order:
            if not flat[i] or float(np.abs(mean[:, i] - ref).max()) > _BAR_COLOUR:
                break
            k += 1
        # The line after a bar blends bar and picture (scaling): drop it too.
        return k + 1 if 0 < k <= _BAR_MAX * length else 0

    first, last = run(range(length)), run(range(length - 1, -1, -1))
    if first + last >= length // 2:
        return 0, 0
    return first, last


def content_box(x: F64) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the picture inside letterbox/pillarbox bars
    (or any flat, static border) of frames ``x`` ``(n, H, W, 3)`` in [0, 1], over the
    whole clip, so every frame is cut the same way. Bars do not move: a few frames
    spread over the clip are enough to find them."""
    if x.shape[0] > _BAR_FRAMES:
        x = x[np.linspace(0, x.shape[0] - 1, _BAR_FRAMES).round().astype(np.int64)]
    top, bottom = _edge_bars(x)
    left, right = _edge_bars(x.transpose(0, 2, 1, 3))
    return top, x.shape[1] - bottom, left, x.shape[2] - right


def _box_resample(x: F64, axis: int, lo: int, hi: int, n_out: int) -> F64:
    """Box-filter ``[lo, hi)`` of ``axis`` down to ``n_out`` samples (area averaging,
    fractional edges included), through a running sum: a few passes over the data in
    a fixed order, however the bounds fall."""
    x = np.moveaxis(x, axis, 0)
    if lo == 0 and hi == x.shape[0] and hi % n_out == 0:
        k = hi // n_out
        out: F64 = x.reshape(n_out, k, *x.shape[1:]).mean(axis=1)
        return np.moveaxis(out, 0, axis)
    cum = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    edges = lo + (hi - lo) * np.arange(n_out + 1) / n_out
    base = np.minimum(np.floor(edges).astype(np.int64), x.shape[0] - 1)
    frac = (edges - base).reshape(-1, *([1] * (x.ndim - 1)))
    at = cum[base] + frac * x[base]  # the running sum at each fractional edge
    out = (at[1:] - at[:-1]) * (n_out / (hi - lo))
    return np.moveaxis(out, 0, axis)


def _work_frames(frames: npt.NDArray[np.uint8]) -> F64:
    """Frames in [0, 1] with bars removed, resampled to the ``_WORK x _WORK`` grid."""
    x = frames.astype(np.float64) / 255.0
    top, bottom, left, right = content_box(x)
    x = _box_resample(x, 1, top, bottom, _WORK)
    return _box_resample(x, 2, left, right, _WORK)


def frame_features(frames: npt.NDArray[np.uint8]) -> tuple[F64, F64, F64]:
    """Per-frame descriptors ``(n, FRAME_DIMS)``, plus the z-scored luma at 16x16 and
    the hue histograms, which clip pooling uses for motion."""
    x = _work_frames(frames)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    n = x.shape[0]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    mu = luma.mean(axis=(1, 2))[:, None, None]
    sd = luma.std(axis=(1, 2))[:, None, None]
    scale = sd + 0.03
    z = (luma - mu) / scale

    layout = _cells(z, _GRID)
    o1 = (r - g) / scale
    o2 = (0.5 * (r + g) - b) / scale
    colour_layout = np.concatenate([_cells(o1, _GRID), _cells(o2, _GRID)], axis=1) * 0.5

    chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
    hue = np.arctan2(math.sqrt(3) * (g - b), 2 * r - g - b) + math.pi
    hist = _soft_hist(hue.reshape(n, -1), chroma.reshape(n, -1), _HUE_BINS, 2 * math.pi)
    total = chroma.reshape(n, -1).sum(axis=1)[:, None]
    # Hue of a nearly grey frame is noise: the histogram fades out with colourfulness.
    colourful = np.minimum(total / (0.05 * chroma[0].size), 1.0)
    hue_hist = hist / np.maximum(total, 1e-9) * colourful

    quantiles = np.quantile(z.reshape(n, -1), _QUANTILES, axis=1).T

    gx = z[:, 1:-1, 2:] - z[:, 1:-1, :-2]
    gy = z[:, 2:, 1:-1] - z[:, :-2, 1:-1]
    mag = np.hypot(gx, gy)
    ang = np.arctan2(gy, gx) % math.pi
    hh, ww = mag.shape[1] // 2 * 2, mag.shape[2] // 2 * 2
    grads = []
    for i in range(2):
        for j in range(2):
            ys = slice(i * hh // 2, (i + 1) * hh // 2)
            xs = slice(j * ww // 2, (j + 1) * ww // 2)
            m = mag[:, ys, xs].reshape(n, -1)
            grads.append(_soft_hist(ang[:, ys, xs].reshape(n, -1), m, _ORIENT_BINS, math.pi))
    gradients = np.concatenate(grads, axis=1)
    gradients /= np.maximum(gradients.sum(axis=1, keepdims=True), 1e-9)
    edges = np.log1p(mag.mean(axis=(1, 2)))[:, None]

    feats = np.concatenate([layout, colour_layout, hue_hist, quantiles, gradients, edges], axis=1)
    return feats, _cells(z, 16), hue_hist


@functools.cache
def _mirror_pairs() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs ``(i, j)``, ``i < j``, of the clip descriptor that a horizontal
    mirror swaps: grid cells left <-> right, gradient orientations θ <-> π - θ
    (bin k <-> 7 - k; the 2x2 gradient cells swap columns too)."""
    grid = np.arange(_GRID * _GRID).reshape(_GRID, _GRID)
    cells = grid[:, ::-1].ravel()
    grads = np.arange(4 * _ORIENT_BINS).reshape(2, 2, _ORIENT_BINS)[:, ::-1, ::-1].ravel()
    per_group = {
        "layout": cells,
        "colour_layout": np.concatenate([cells, cells + _GRID * _GRID]),
        "gradients": grads,
        "motion_grid": cells,
    }
    perm, i = [], 0
    for name, size, _ in VISUAL_GROUPS:
        base = name.split("_", 1)[1] if name.startswith(("mean_", "std_")) else name
        local = per_group.get(base, np.arange(size))
        perm.append(local + i)
        i += size
    p = np.concatenate(perm)
    lo = np.nonzero(p > np.arange(p.size))[0]
    return lo, p[lo]


def mirror_invariant(f: F64) -> F64:
    """``f`` with each mirror pair ``(a, b)`` replaced by ``((a + b) / 2, |a - b| / 2)``:
    the same for a clip and its mirror image, and most of the information kept (only
    which side is which is lost)."""
    i, j = _mirror_pairs()
    out = f.copy()
    out[i] = 0.5 * (f[i] + f[j])
    out[j] = 0.5 * np.abs(f[i] - f[j])
    return out


def visual_features(frames: npt.NDArray[np.uint8]) -> F64:
    """The clip descriptor ``(VISUAL_DIMS,)`` of ``n >= 1`` sampled frames."""
    return mirror_invariant(_raw_visual(frames))


def _raw_visual(frames: npt.NDArray[np.uint8]) -> F64:
    feats, small, hue_hist = frame_features(frames)
    mean = feats.mean(axis=0)
    std = feats.std(axis=0)
    n = feats.shape[0]
    if n >= 2:
        diff = np.abs(np.diff(small.reshape(n, 16, 16), axis=0))  # (n-1, 16, 16)
        motion_grid = _cells(diff, _GRID).mean(axis=0)
        per_frame = diff.mean(axis=(1, 2))
        colour_change = np.abs(np.diff(hue_hist, axis=0)).sum(axis=1).mean()
        motion_stats = np.array([per_frame.mean(), per_frame.std(), per_frame.max(), colour_change])
    else:
        motion_grid = np.zeros(_GRID * _GRID)
        motion_stats = np.zeros(4)
    return np.concatenate([mean, std, motion_grid, motion_stats])


# --------------------------------------------------------------------------- audio


@functools.cache
def _mel_filters() -> F64:
    """Triangular mel filters ``(N_FFT//2+1, N_MELS)`` from 60 Hz to 7.6 kHz."""

    def mel(f: F64 | float) -> F64:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m: F64) -> F64:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(60.0), mel(7600.0), _N_MELS + 2))
    freqs = np.arange(_N_FFT // 2 + 1) * _RATE / _N_FFT
    fb = np.zeros((freqs.size, _N_MELS))
    for i in range(_N_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[:, i] = np.maximum(0.0, np.minimum(up, down))
    # Narrow low filters can fall between FFT bins; give each at least its nearest bin.
    for i in range(_N_MELS):
        if fb[:, i].sum() == 0:
            fb[round(edges[i + 1] * _N_FFT / _RATE), i] = 1.0
    return fb


@functools.cache
def _chroma_map() -> F64:
    """``(N_FFT//2+1, 12)``: FFT bins 80 Hz-4 kHz to pitch classes."""
    freqs = np.arange(_N_FFT // 2 + 1) * _RATE / _N_FFT
    out = np.zeros((freqs.size, 12))
    for k, f in enumerate(freqs):
        if 80.0 <= f <= 4000.0:
            pc = (12 * math.log2(f / 440.0)) % 12
            lo = math.floor(pc) % 12
            frac = pc - math.floor(pc)
            out[k, lo] += 1 - frac
            out[k, (lo + 1) % 12] += frac
    return out


@functools.cache
def _window() -> F64:
    return np.hanning(_N_FFT + 1)[:-1]


def is_silent(samples: npt.NDArray[np.float32]) -> bool:
    if samples.size < _N_FFT:
        return True
    x = samples.astype(np.float64)
    return bool(math.sqrt(float(np.mean(x * x))) < _SILENCE_RMS)


def _spectrogram(x: F64) -> F64:
    """Power spectra ``(T, N_FFT//2+1)`` of Hann-windowed frames, ``_HOP`` apart."""
    n_frames = 1 + (x.size - _N_FFT) // _HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, _N_FFT)[::_HOP][:n_frames]
    power: F64 = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    return power


def denoise(power: F64) -> F64:
    """Spectral subtraction of the clip's stationary noise: the mean spectrum of its
    quietest fifth of frames (pauses, in speech) is taken from every frame.

    Noise that is there all the time (hiss, hum, a noisy room, pink noise added to a
    copy) then mostly cancels: a noisy copy's quiet frames hold the source's quiet
    frames plus the noise, so what remains is about what remains of the source.
    Averaging whole frames (chosen by their total energy) rather than a per-bin
    minimum keeps the estimate unbiased.
    """
    energy = power.sum(axis=1)
    quiet = np.argsort(energy, kind="stable")[: max(1, power.shape[0] // _QUIET_SHARE)]
    noise = power[quiet].mean(axis=0)
    out: F64 = np.maximum(power - noise, 0.0)
    return out


def audio_features(samples: npt.NDArray[np.float32]) -> F64:
    """The clip descriptor ``(AUDIO_DIMS,)`` of non-silent mono 16 kHz samples."""
    x = samples.astype(np.float64)
    power = denoise(_spectrogram(x))  # (T, 257)
    n_frames = power.shape[0]
    mel = _dot(power, _mel_filters())  # (T, 40)
    # A floor under the clip's mean band energy: what the subtraction left of the
    # noise, and bands with nothing in them, all sit on it alike.
    floor = max(float(mel.mean()), 1e-20) * _FLOOR
    logmel = 10.0 * np.log10(mel + floor)
    rel = logmel - logmel.mean()  # the clip's own level cancels any gain change

    energy = mel.sum(axis=1)
    # Frames weigh by their energy: pauses (where the noise was) count little.
    weights = energy / max(float(energy.sum()), 1e-30)
    mel_mean = np.einsum("t,tb->b", weights, rel, optimize=False) / 10.0
    spread = np.einsum("t,tb->b", weights, (rel - mel_mean * 10.0) ** 2, optimize=False)
    mel_std = np.sqrt(np.maximum(spread, 0.0)) / 10.0
    delta = np.abs(np.diff(rel, axis=0)) if n_frames > 1 else np.zeros((1, _N_MELS))
    mel_delta = delta.reshape(delta.shape[0], 10, 4).mean(axis=(0, 2)) / 10.0

    bands = np.arange(_N_MELS) / _N_MELS
    safe = np.maximum(energy, 1e-30)
    centroid = (mel * bands).sum(axis=1) / safe
    flatness = np.exp(np.log(mel + floor).mean(axis=1)) / (safe / _N_MELS + floor)
    cum = np.cumsum(mel, axis=1)
    rolloff = (cum < 0.85 * cum[:, -1:]).sum(axis=1) / _N_MELS
    spectral = []
    for values in (centroid, flatness, rolloff):
        m = float((weights * values).sum())
        spectral += [m, math.sqrt(max(float((weights * (values - m) ** 2).sum()), 0.0))]

    chroma = _dot(power.sum(axis=0), _chroma_map())
    chroma = chroma / max(float(chroma.sum()), 1e-30)

    flux = np.maximum(np.diff(rel, axis=0), 0.0).mean(axis=1) if n_frames > 1 else np.zeros(1)
    thresh = flux.mean() + flux.std()
    peaks = (flux[1:-1] > thresh) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] > flux[2:])
    seconds = x.size / _RATE
    onsets = np.array([peaks.sum() / seconds / 4.0, flux.mean() / 5.0, flux.std() / 5.0])

    # Frame loudness relative to the clip's 95th percentile (not its single loudest
    # frame, which a trim or a transient moves), floored at -30 dB.
    env = 10.0 * np.log10(energy + floor * _N_MELS)
    env = np.maximum(env - np.percentile(env, 95), -30.0)
    loudness = np.quantile(env, (0.1, 0.5, 0.9)) / 20.0
    spec = np.abs(np.fft.rfft(env - env.mean()))
    mod_freqs = np.fft.rfftfreq(env.size, _HOP / _RATE)
    band_edges = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    modulation = np.array(
        [
            spec[(mod_freqs >= lo) & (mod_freqs < hi)].sum()
            for lo, hi in itertools.pairwise(band_edges)
        ]
    )
    modulation = modulation / max(float(modulation.sum()), 1e-30)

    return np.concatenate(
        [mel_mean, mel_std, mel_delta, np.array(spectral), chroma, onsets, modulation, loudness]
    )


# --------------------------------------------------------------------------- projection


def _group_weights(groups: tuple[tuple[str, int, float], ...]) -> F64:
    return np.concatenate([np.full(size, w / math.sqrt(size)) for _, size, w in groups])


@functools.cache
def _projection(dims: int, in_dims: int, seed: int) -> F64:
    """A fixed ``(in_dims, dims)`` matrix with orthonormal rows (so ``x @ P`` keeps
    dot products), generated from ``seed``.

    For a power-of-two ``dims`` it is a signed, column-selected Sylvester-Hadamard
    matrix (entries exactly +-1/sqrt(dims), no floating-point factorisation); other
    sizes use a QR factorisation of a seeded Gaussian matrix.
    """
    if in_dims > dims:
        raise ValueError(f"cannot project {in_dims} features isometrically into {dims} dims")
    rng = np.random.default_rng(seed)
    if dims & (dims - 1) == 0:
        h = np.array([[1.0]])
        while h.shape[0] < dims:
            h = np.block([[h, h], [h, -h]])
        rows = rng.choice(dims, size=in_dims, replace=False)
        signs = rng.choice(np.array([-1.0, 1.0]), size=dims)
        out: F64 = h[rows] * signs[None, :] / math.sqrt(dims)
        return out
    q, _ = np.linalg.qr(rng.standard_normal((dims, in_dims)))
    return np.ascontiguousarray(q.T)


#: Standardised features are soft-limited to about this many scales from the mean.
_Z_LIMIT = 2.5


def _standardise(f: F64, mean: tuple[float, ...], scale: tuple[float, ...]) -> F64:
    """Centre and scale with the calibration, then soft-limit (``c * tanh(z / c)``):
    a feature that is unusual for this clip must not outweigh all the others, since
    a trim or a codec can move an outlier a long way."""
    if len(mean) != f.size:  # not calibrated (yet): identity
        return f
    z: F64 = (f - np.asarray(mean)) / np.asarray(scale)
    z = _Z_LIMIT * np.tanh(z / _Z_LIMIT)
    return z


@attrs.frozen(eq=False)
class Calibration:
    """What ``tools/calibrate_engine.py`` measured for one kind of descriptor (visual
    or audio): the per-feature ``mean`` and ``scale`` of the standardisation, then,
    in the space of the weighted, unit-length descriptors, their ``centre`` and the
    ``axes`` ``(k, dims)`` (orthonormal rows) along which the spread is rescaled by
    ``gains`` ``(k,)``. Empty tuples mean "not calibrated": identity."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    centre: tuple[float, ...] = ()
    axes: tuple[float, ...] = ()
    gains: tuple[float, ...] = ()

    @functools.cached_property
    def arrays(self) -> tuple[F64, F64, F64]:
        k = len(self.gains)
        return (
            np.asarray(self.centre, np.float64),
            np.asarray(self.axes, np.float64).reshape(k, len(self.axes) // max(k, 1)),
            np.asarray(self.gains, np.float64),
        )


def weighted_unit(f: F64, cal: Calibration, groups: tuple[tuple[str, int, float], ...]) -> F64:
    """The standardised, group-weighted descriptor at unit length: the space where
    the calibration's centre and axes were measured."""
    z = _standardise(f, cal.mean, cal.scale) * _group_weights(groups)
    n = math.sqrt(float(np.einsum("i,i->", z, z, optimize=False)))
    return z / n if n > 0 else z


def decorrelate(u: F64, cal: Calibration) -> F64:
    """``u`` minus the calibration's centre, with its spread along the calibration's
    leading axes shrunk (shrinkage whitening, see ``tools/calibrate_engine.py``).

    Why: per-feature centring leaves the features correlated, so a few directions
    carry most of the variance of real clips, and a small shift of the population
    along them (other photographs, other recordings) adds the same component to
    every vector. A video vector, the mean of its clips, keeps that shared part
    while the rest averages out (unrelated real videos averaged 0.16 cosine).
    Rescaling those directions towards the average spread bounds how much any one
    of them can contribute."""
    centre, axes, gains = cal.arrays
    if centre.size != u.size:
        return u
    d = u - centre
    coef = np.einsum("kn,n->k", axes, d, optimize=False) * (gains - 1.0)
    out: F64 = d + np.einsum("k,kn->n", coef, axes, optimize=False)
    return out


def _project(z: F64, model: Model, purpose: str) -> Vector:
    # The last input dim is reserved for the "silence" direction (see _silence).
    proj = _projection(model.dims, z.size + 1, model.seed(purpose))
    return normalise(_dot(z, proj[:-1]))


def _silence(model: Model, purpose: str, in_dims: int) -> Vector:
    proj = _projection(model.dims, in_dims + 1, model.seed(purpose))
    return normalise(proj[-1].copy())


# --------------------------------------------------------------------------- text

_WORD = re.compile(r"\w+", re.UNICODE)


def _hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")


def text_vector(text: str, dims: int, salt: str) -> F64:
    """Signed feature hashing of words (1.0), word bigrams (0.7) and character
    trigrams of each word (0.3 / number of trigrams), with log-scaled counts."""
    words = _WORD.findall(text.lower())
    counts: dict[str, float] = {}
    for i, w in enumerate(words):
        counts["w:" + w] = counts.get("w:" + w, 0.0) + 1.0
        if i:
            key = f"b:{words[i - 1]} {w}"
            counts[key] = counts.get(key, 0.0) + 0.7
        padded = f"<{w}>"
        grams = [padded[j : j + 3] for j in range(max(len(padded) - 2, 1))]
        for gram in grams:
            key = "c:" + gram
            counts[key] = counts.get(key, 0.0) + 0.3 / len(grams) * 3
    v = np.zeros(dims, np.float64)
    for key in sorted(counts):
        h = _hash(salt + "\x00" + key)
        v[h % dims] += (1.0 if (h >> 63) & 1 else -1.0) * (
            1.0 + math.log(counts[key]) if counts[key] >= 1 else counts[key]
        )
    if not v.any():
        # No word characters at all (e.g. only punctuation): hash the raw string.
        h = _hash(salt + "\x00raw:" + text)
        v[h % dims] = 1.0
    return v


# --------------------------------------------------------------------------- backend

VISUAL_CALIBRATION = Calibration(
    _calibration.VISUAL_MEAN,
    _calibration.VISUAL_SCALE,
    _calibration.VISUAL_CENTRE,
    _calibration.VISUAL_AXES,
    _calibration.VISUAL_GAINS,
)
AUDIO_CALIBRATION = Calibration(
    _calibration.AUDIO_MEAN,
    _calibration.AUDIO_SCALE,
    _calibration.AUDIO_CENTRE,
    _calibration.AUDIO_AXES,
    _calibration.AUDIO_GAINS,
)


class FeatureBackend:
    """The weights-free default backend (name ``"features"``); see the module docstring."""

    name = "features"
    sample_fps = 4.0
    # Twice the working grid, so that letterbox bars are found before the picture
    # is resampled to it.
    frame_size = (2 * _WORK, 2 * _WORK)
    #: It serves the contract's models, at the contract's dimensions.
    catalogue = CONTRACT_CATALOGUE

    def visual(
        self,
        frames: npt.NDArray[np.uint8],
        times: npt.NDArray[np.float64],
        model: Model,
        option: str,
    ) -> Vector:
        if frames.shape[0] == 0:
            raise ValueError("a visual clip needs at least one frame")
        u = weighted_unit(visual_features(frames), VISUAL_CALIBRATION, VISUAL_GROUPS)
        return _project(decorrelate(u, VISUAL_CALIBRATION), model, f"visual:{option}")

    def audio(self, samples: npt.NDArray[np.float32], model: Model, option: str) -> Vector:
        purpose = f"audio:{option}"
        if is_silent(samples):
            return _silence(model, purpose, AUDIO_DIMS)
        u = weighted_unit(audio_features(samples), AUDIO_CALIBRATION, AUDIO_GROUPS)
        return _project(decorrelate(u, AUDIO_CALIBRATION), model, purpose)

    def text(self, text: str, model: Model) -> Vector:
        return normalise(text_vector(text, model.dims, model.name))

    def pool(
        self,
        vectors: npt.NDArray[np.float32],
        weights: npt.NDArray[np.float64],
        model: Model,
        option: str,
    ) -> Vector:
        return mean_pool(vectors, weights)
