"""The v2 contract's segmentation rules, as pure functions and one online cutter.

``fixed``: segments of ``duration_sec`` tile ``[start, end)``; a final remainder
under 2 s is dropped unless it is the only segment. ``dynamic``: boundaries come
from a detector (:mod:`aioembed.engine._shots`); a boundary less than
``min_duration_sec`` after the previous one is ignored, a final piece shorter than
``min_duration_sec`` joins the previous segment, and a shot over 10 s is split into
equal parts of at most 10 s.

:class:`DynamicCutter` applies the dynamic rules while boundaries arrive, so a
decode pass can hand segments on (and drop their media) as soon as no later
boundary can change them: only the last accepted shot is held back, for the
final-piece rule. A shot that runs past :data:`MAX_HELD_SHOT` without a cut is
closed there (then split into 10 s parts), which bounds what a pass holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = [
    "MAX_HELD_SHOT",
    "MAX_SEGMENT",
    "MIN_LAST_SEGMENT",
    "DynamicCutter",
    "dynamic_spans",
    "fixed_spans",
    "split_long",
]

Span = tuple[float, float]

#: A shot longer than this (seconds) is split into equal parts no longer than it.
MAX_SEGMENT = 10.0
#: ``fixed``: a final remainder shorter than this (seconds) is dropped.
MIN_LAST_SEGMENT = 2.0
#: A shot with no cut for this long (seconds) is closed here: a multiple of
#: :data:`MAX_SEGMENT`, so its parts are exactly 10 s.
MAX_HELD_SHOT = 120.0
_EPS = 1e-6


def _span(a: float, b: float) -> Span:
    return (round(a, 6), round(b, 6))


def fixed_spans(start: float, end: float, duration: float) -> list[Span]:
    """Segments of ``duration`` s tiling ``[start, end)``; a final remainder under
    :data:`MIN_LAST_SEGMENT` is dropped unless it is the only segment."""
    if not duration > 0:
        raise ValueError(f"duration should be positive, got {duration!r}")
    if not end > start:
        raise ValueError(f"end should be greater than start, got {start!r}..{end!r}")
    spans: list[Span] = []
    k = 0
    while True:
        a = start + k * duration  # multiples, not sums: no drift over many segments
        if end - a <= _EPS:
            break
        b = min(a + duration, end)
        if b - a < min(duration, MIN_LAST_SEGMENT) - _EPS and spans:
            break  # a final remainder, and a short one
        spans.append(_span(a, b))
        k += 1
    return spans


def split_long(start: float, end: float) -> list[Span]:
    """``[start, end)`` as ``ceil(length / 10)`` equal parts (one if it is 10 s or less)."""
    parts = max(1, math.ceil((end - start) / MAX_SEGMENT - _EPS))
    step = (end - start) / parts
    return [
        _span(start + i * step, end if i == parts - 1 else start + (i + 1) * step)
        for i in range(parts)
    ]


class DynamicCutter:
    """The dynamic rules applied online.

    Call :meth:`boundary` for each detected boundary in time order, :meth:`advance`
    when the detector guarantees no boundary before ``t`` is still to come, and
    :meth:`finish` once; each returns the segments that became final, in order.
    """

    def __init__(self, start: float, end: float, min_duration: float) -> None:
        if not end > start:
            raise ValueError(f"end should be greater than start, got {start!r}..{end!r}")
        if not min_duration > 0:
            raise ValueError(f"min_duration should be positive, got {min_duration!r}")
        self.start, self.end, self.min_duration = start, end, min_duration
        self._open = start  # start of the shot in progress
        self._held: Span | None = None  # last accepted shot: the final piece may join it

    def boundary(self, t: float) -> list[Span]:
        """A detected boundary at ``t`` s; ignored within ``min_duration`` of the
        previous boundary (or of ``start``) and outside the range."""
        if t - self._open < self.min_duration - _EPS or t >= self.end - _EPS:
            return []
        return self._accept(t)

    def advance(self, t: float) -> list[Span]:
        """No boundary before ``t`` is still to come: close an overlong shot."""
        out: list[Span] = []
        while min(t, self.end) - self._open >= MAX_HELD_SHOT:
            out += self._accept(self._open + MAX_HELD_SHOT)
        return out

    def finish(self) -> list[Span]:
        """The range ends: the final piece, joined to the held shot when short."""
        out: list[Span] = []
        last: Span = (self._open, self.end)
        if self._held is not None:
            if self.end - self._open < self.min_duration - _EPS:
                last = (self._held[0], self.end)
            else:
                out += split_long(*self._held)
        self._held = None
        self._open = self.end
        return out + (split_long(*last) if last[1] - last[0] > _EPS else [])

    def _accept(self, t: float) -> list[Span]:
        out = split_long(*self._held) if self._held is not None else []
        self._held = (self._open, t)
        self._open = t
        return out


def dynamic_spans(
    start: float, end: float, min_duration: float, boundaries: Iterable[float]
) -> list[Span]:
    """The dynamic rules over a known list of boundary times (sorted or not)."""
    cutter = DynamicCutter(start, end, min_duration)
    out: list[Span] = []
    for t in sorted(boundaries):
        if t > start:
            out += cutter.boundary(t)
    out += cutter.advance(end)
    return out + cutter.finish()
