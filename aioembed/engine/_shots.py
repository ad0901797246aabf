"""Shot boundaries in pictures and change points in sound, found online in one pass.

Both detectors are fed in time order and keep O(1) state (no frames, a few seconds
of small descriptors at most), so they ride along the engine's single decode pass.
``push`` returns the boundaries that became certain; ``horizon`` is the time
before which no further boundary can appear (what a segmenter may finalise).

**Pictures** (:class:`ShotDetector`), per sampled frame: a 4x4x4 joint colour
histogram and an 8x8 luma thumbnail; the distance between two frames is the mean
of half the histograms' L1 distance and the thumbnails' mean absolute difference
(both in [0, 1]). Consecutive distances above the local noise level (3x the
lower quartile of the last ~5 s, at least 0.04; half that to go on) form a *run*.
When a run ends:

* a *cut* is a spike in it: a step of at least 0.12 and 2.5x the median of the
  run's other steps (a single-step run is a spike; two cuts in one run are two
  spikes); it sits halfway between its two frames;
* otherwise a run of at most 3 s whose end frames differ by at least 0.1 overall
  is a *dissolve* (or fade), placed at the step-weighted centre of the run. Longer
  runs are motion (pans, zooms) and cut only at spikes.

**Sound** (:class:`AudioChangeDetector`), per 50 ms hop of 16 kHz mono: RMS level
and 16 log-spaced band energies (dB, 100 Hz - 7.6 kHz). A *silence* (under -50
dBFS for at least 0.3 s, between sounds) is a boundary at its midpoint; a
*spectral change* is a peak of the distance between the mean band levels of the
second before and the second after (at least 6 dB, the largest within 1 s),
away from silences.
"""

from __future__ import annotations

import enum
import math
from collections import deque

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["AudioChangeDetector", "Boundary", "BoundaryKind", "ShotDetector", "frame_signature"]

F64 = npt.NDArray[np.float64]


class BoundaryKind(enum.StrEnum):
    CUT = "cut"
    DISSOLVE = "dissolve"
    SILENCE = "silence"
    CHANGE = "change"


@attrs.frozen
class Boundary:
    """A detected boundary at ``time`` seconds."""

    time: float
    kind: BoundaryKind


# --------------------------------------------------------------------------- pictures

_LOW_MIN = 0.04
_NOISE_FACTOR = 3.0
_NOISE_WINDOW = 5.0  # s of past steps for the noise level
_CUT_MIN = 0.12
_CUT_RATIO = 2.5
_GRADUAL_MIN = 0.1
_GRADUAL_MAX = 3.0  # s


def frame_signature(frame: npt.NDArray[np.uint8]) -> F64:
    """``(192,)``: an 8x8 thumbnail of each colour channel, in [0, 1].

    Thumbnails are linear in a cross-fade (a dissolve moves them in even steps,
    where a histogram jumps as colours cross bin edges) and coarse enough that
    moving detail averages out.
    """
    x = frame.astype(np.float64) / 255.0
    h, w = x.shape[:2]
    hh, ww = h // 8 * 8, w // 8 * 8
    thumb = x[:hh, :ww].reshape(8, hh // 8, 8, ww // 8, 3).mean(axis=(1, 3))
    out: F64 = thumb.ravel()
    return out


def _distance(a: F64, b: F64) -> float:
    return float(np.abs(a - b).mean())


class ShotDetector:
    """Hard cuts and dissolves from sampled frames (see the module docstring)."""

    def __init__(self) -> None:
        self._prev: tuple[float, F64] | None = None
        self._steps: deque[tuple[float, float]] = deque()  # (time, step) for the noise level
        # The open run: the frame before it, then per step (time of both frames,
        # size, signature of the later frame). At most _GRADUAL_MAX s of them.
        self._anchor: F64 | None = None
        self._run: list[tuple[float, float, float, F64]] = []
        self.horizon = -math.inf

    def push(self, time: float, frame: npt.NDArray[np.uint8]) -> list[Boundary]:
        """The next sampled frame (times strictly increasing) -> boundaries now certain."""
        sig = frame_signature(frame)
        prev, self._prev = self._prev, (time, sig)
        if prev is None:
            self.horizon = time
            return []
        step = _distance(prev[1], sig)
        low = max(_LOW_MIN, _NOISE_FACTOR * self._noise())
        self._steps.append((time, step))
        while self._steps and self._steps[0][0] < time - _NOISE_WINDOW:
            self._steps.popleft()
        out: list[Boundary] = []
        # Hysteresis: a run goes on while steps stay above half the threshold, so
        # the uneven steps of a dissolve sampled on a frame grid do not split it.
        if step >= (low / 2 if self._run else low):
            if not self._run:
                self._anchor = prev[1]
            self._run.append((prev[0], time, step, sig))
            if time - self._run[0][0] > _GRADUAL_MAX:
                out = self._close()  # too long for one dissolve: judge it now
        elif self._run:
            out = self._close()
        self.horizon = self._run[0][0] if self._run else time
        return out

    def finish(self) -> list[Boundary]:
        """End of the pictures: judge an open run."""
        out = self._close() if self._run else []
        self.horizon = math.inf
        return out

    def _noise(self) -> float:
        # The lower quartile: transitions are a minority of steps even when frequent.
        return float(np.quantile([s for _, s in self._steps], 0.25)) if self._steps else 0.0

    def _close(self) -> list[Boundary]:
        run, anchor = self._run, self._anchor
        self._run, self._anchor = [], None
        if anchor is None:
            return []
        sizes = [s for _, _, s, _ in run]
        cuts: list[Boundary] = []
        for i, (a, b, s, _) in enumerate(run):
            others = sizes[:i] + sizes[i + 1 :]
            if s >= _CUT_MIN and (not others or s >= _CUT_RATIO * float(np.median(others))):
                cuts.append(Boundary(round((a + b) / 2, 6), BoundaryKind.CUT))
        return cuts or _gradual(anchor, run)


def _gradual(anchor: F64, run: list[tuple[float, float, float, F64]]) -> list[Boundary]:
    """Dissolves in a run without spikes: split at a valley of the steps between two
    parts that each change the picture enough (two dissolves close together), then
    each part of 2+ steps, at most _GRADUAL_MAX s, changing enough, is one."""
    sizes = [s for _, _, s, _ in run]
    best: int | None = None
    for m in range(1, len(run) - 1):
        valley = sizes[m] <= 0.5 * max(sizes[:m]) and sizes[m] <= 0.5 * max(sizes[m + 1 :])
        if (
            valley
            and _distance(anchor, run[m - 1][3]) >= _GRADUAL_MIN
            and _distance(run[m][3], run[-1][3]) >= _GRADUAL_MIN
            and (best is None or sizes[m] < sizes[best])
        ):
            best = m
    if best is not None:
        return _gradual(anchor, run[:best]) + _gradual(run[best][3], run[best + 1 :])
    if (
        len(run) < 2
        or run[-1][1] - run[0][0] > _GRADUAL_MAX
        or _distance(anchor, run[-1][3]) < _GRADUAL_MIN
    ):
        return []
    centre = sum((a + b) / 2 * s for a, b, s, _ in run) / sum(sizes)
    return [Boundary(round(centre, 6), BoundaryKind.DISSOLVE)]


# --------------------------------------------------------------------------- sound

_RATE = 16_000
_HOP = 800  # 50 ms
_FFT = 1024
_BANDS = 16
_SILENCE_DB = -50.0
_MIN_SILENCE = 0.3  # s
_CONTEXT = 20  # hops each side of a spectral-change candidate (1 s)
_CHANGE_DB = 6.0


def _band_map() -> F64:
    edges = np.geomspace(100.0, 7600.0, _BANDS + 1)
    freqs = np.fft.rfftfreq(_FFT, 1 / _RATE)
    out = np.zeros((freqs.size, _BANDS))
    for i in range(_BANDS):
        out[(freqs >= edges[i]) & (freqs < edges[i + 1]), i] = 1.0
    return out


class AudioChangeDetector:
    """Silences and spectral changes in mono float32 audio at 16 kHz (see the module
    docstring). Feed consecutive chunks of any length starting at ``start`` s."""

    def __init__(self, start: float = 0.0) -> None:
        self.start = start
        self._pending = np.zeros(0, np.float32)
        self._hops = 0  # hops analysed so far
        self._window = np.hanning(_FFT)
        self._bands = _band_map()
        # (hop index, band levels, silent) of the last 2 * _CONTEXT + 1 hops.
        self._recent: deque[tuple[int, F64, bool]] = deque(maxlen=4 * _CONTEXT + 1)
        self._novelty: deque[tuple[int, float]] = deque(maxlen=2 * _CONTEXT + 1)
        self._silent_since: int | None = None
        self._heard = False  # a sound before the current silence
        self._last_silence = -(10**9)  # hop of the last silence edge
        self.horizon = start

    def _time(self, hop: float) -> float:
        return round(self.start + hop * _HOP / _RATE, 6)

    def push(self, samples: npt.NDArray[np.float32]) -> list[Boundary]:
        """The next chunk of samples -> boundaries now certain."""
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        out: list[Boundary] = []
        n = (len(data) - _FFT) // _HOP + 1 if len(data) >= _FFT else 0
        for i in range(n):
            out += self._hop(data[i * _HOP : i * _HOP + _FFT].astype(np.float64))
        self._pending = np.array(data[n * _HOP :], np.float32)
        return out

    def finish(self) -> list[Boundary]:
        """End of the sound (a trailing silence is no boundary)."""
        self.horizon = math.inf
        return []

    def _hop(self, x: F64) -> list[Boundary]:
        hop = self._hops
        self._hops += 1
        rms = math.sqrt(float(np.mean(x * x)))
        silent = 20 * math.log10(max(rms, 1e-12)) < _SILENCE_DB
        power = np.abs(np.fft.rfft(x * self._window)) ** 2
        levels = 10 * np.log10(power @ self._bands + 1e-10)
        out: list[Boundary] = []
        if silent and self._silent_since is None:
            self._silent_since = hop
        elif not silent:
            if self._silent_since is not None:
                start = self._silent_since
                if self._heard and (hop - start) * _HOP / _RATE >= _MIN_SILENCE:
                    out.append(Boundary(self._time((start + hop) / 2), BoundaryKind.SILENCE))
                self._last_silence = hop
                self._silent_since = None
            self._heard = True
        self._recent.append((hop, levels, silent))
        out += self._spectral()
        first_open = self._silent_since if self._silent_since is not None else hop
        self.horizon = self._time(min(first_open, hop - 2 * _CONTEXT))
        return out

    def _spectral(self) -> list[Boundary]:
        if len(self._recent) < 2 * _CONTEXT:
            return []
        items = list(self._recent)[-2 * _CONTEXT :]
        centre = items[_CONTEXT][0]
        before = [lv for _, lv, s in items[:_CONTEXT] if not s]
        after = [lv for _, lv, s in items[_CONTEXT:] if not s]
        if len(before) < _CONTEXT // 2 or len(after) < _CONTEXT // 2:
            value = 0.0  # next to a silence: that boundary is the silence's
        else:
            value = float(np.abs(np.mean(before, axis=0) - np.mean(after, axis=0)).mean())
        self._novelty.append((centre, value))
        if len(self._novelty) < 2 * _CONTEXT + 1:
            return []
        mid_hop, mid = self._novelty[_CONTEXT]
        if mid < _CHANGE_DB or abs(mid_hop - self._last_silence) <= _CONTEXT:
            return []
        if any(v > mid or (v == mid and h < mid_hop) for h, v in self._novelty if h != mid_hop):
            return []
        return [Boundary(self._time(mid_hop), BoundaryKind.CHANGE)]
