"""The engine's Embed API v2 half: segmentation rules, shot and audio-change
detection, and (below) ``embed_v2`` on tiny generated media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aioembed import samples
from aioembed.engine._decode import iter_clips
from aioembed.engine._segments import (
    MAX_HELD_SHOT,
    DynamicCutter,
    dynamic_spans,
    fixed_spans,
    split_long,
)
from aioembed.engine._shots import AudioChangeDetector, Boundary, ShotDetector

# --------------------------------------------------------------------------- rules


def _flat(spans: list[tuple[float, float]]) -> list[float]:
    return [x for span in spans for x in span]


@pytest.mark.parametrize(
    ("start", "end", "d", "expected"),
    [
        (0, 12, 6, [(0, 6), (6, 12)]),
        (0, 13.9, 6, [(0, 6), (6, 12)]),  # 1.9 s remainder dropped
        (0, 14, 6, [(0, 6), (6, 12), (12, 14)]),  # exactly 2 s kept
        (0, 1.5, 6, [(0, 1.5)]),  # the only segment stays, however short
        (0, 4, 6, [(0, 4)]),
        (1.5, 9.5, 2, [(1.5, 3.5), (3.5, 5.5), (5.5, 7.5), (7.5, 9.5)]),
        (0.1, 20.1, 10, [(0.1, 10.1), (10.1, 20.1)]),
    ],
)
def test_fixed_spans(start: float, end: float, d: float, expected: list[tuple[float, float]]) -> None:
    assert fixed_spans(start, end, d) == [(float(a), float(b)) for a, b in expected]


def test_split_long_gives_equal_parts_of_at_most_10s() -> None:
    assert split_long(0, 10) == [(0, 10)]
    assert _flat(split_long(0, 25)) == pytest.approx([0, 25 / 3, 25 / 3, 50 / 3, 50 / 3, 25])
    assert split_long(3, 23) == [(3, 13), (13, 23)]


@pytest.mark.parametrize(
    ("cuts", "end", "m", "expected"),
    [
        # a cut 1 s after the previous boundary is ignored (M = 2)
        ([3.0, 4.0, 7.0], 12, 2, [(0, 3), (3, 7), (7, 12)]),
        # the final piece (11-12) is shorter than M: it joins the previous segment
        ([5.0, 11.0], 12, 2, [(0, 5), (5, 12)]),
        # no cut: one shot of 25 s -> three equal parts
        ([], 25, 4, [(0, 25 / 3), (25 / 3, 50 / 3), (50 / 3, 25)]),
        # a joined final piece can make the shot long enough to be split
        ([2.0, 11.0], 12.5, 2, [(0, 2), (2, 7.25), (7.25, 12.5)]),
        # a cut less than M after the start is ignored; cuts outside the range too
        ([1.0, -3.0, 30.0, 6.0], 12, 4, [(0, 6), (6, 12)]),
        # a range shorter than M is one segment
        ([0.5], 1.5, 2, [(0, 1.5)]),
    ],
)
def test_dynamic_rules(
    cuts: list[float], end: float, m: float, expected: list[tuple[float, float]]
) -> None:
    assert _flat(dynamic_spans(0.0, end, m, cuts)) == pytest.approx(_flat(expected), abs=1e-6)


def test_dynamic_cutter_holds_only_the_last_shot_and_bounds_long_shots() -> None:
    cutter = DynamicCutter(0.0, 1000.0, 2.0)
    assert cutter.boundary(5.0) == []  # held: a short final piece could still join it
    assert cutter.boundary(9.0) == [(0.0, 5.0)]
    # No cut for minutes: the pass may not hold it all, so it is closed at the cap.
    out = cutter.advance(9.0 + MAX_HELD_SHOT + 1)
    assert out == [(5.0, 9.0)]
    out = cutter.boundary(9.0 + MAX_HELD_SHOT + 3)
    assert len(out) == MAX_HELD_SHOT / 10 and all(b - a == pytest.approx(10) for a, b in out)
    tail = cutter.finish()
    assert tail[0][0] == 9.0 + MAX_HELD_SHOT and tail[-1][1] == 1000.0
    assert all(b - a <= 10 + 1e-9 for a, b in tail)


# --------------------------------------------------------------------------- detection


def _matched(found: list[float], truth: list[float], tol: float = 0.5) -> int:
    used: set[int] = set()
    for f in found:
        for i, t in enumerate(truth):
            if i not in used and abs(t - f) <= tol:
                used.add(i)
                break
    return len(used)


def _ticks(duration: float, step: float = 0.5) -> list[tuple[float, float]]:
    n = int(np.ceil(duration / step))
    return [(i * step, min((i + 1) * step, duration)) for i in range(n)]


def _shots(path: Path, duration: float) -> list[Boundary]:
    detector = ShotDetector()
    found: list[Boundary] = []
    last = -1.0
    for clip in iter_clips(path, _ticks(duration), audio=False):
        for t, frame in zip(clip.times, clip.frames, strict=True):
            if t > last:
                found += detector.push(float(t), frame)
                last = float(t)
    return found + detector.finish()


@pytest.mark.parametrize("transition", ["cut", "mixed"])
def test_shot_detector_finds_known_cuts_and_dissolves(tmp_path: Path, transition: str) -> None:
    duration = 16.0
    path = samples.make_video(
        tmp_path / "v.mp4", duration=duration, width=96, height=96, seed=3, transition=transition
    )
    truth = samples.scene_changes(3, duration, transition=transition)
    found = _shots(path, duration)
    hits = _matched([b.time for b in found], [c.time for c in truth])
    assert hits >= len(truth) - 1, (found, truth)
    assert hits >= len(found) - 1, (found, truth)
    if transition == "mixed":
        assert {c.kind for c in truth} == {"cut", "dissolve"}


def test_shot_detector_is_quiet_on_a_single_scene(tmp_path: Path) -> None:
    path = samples.make_video(tmp_path / "v.mp4", duration=1.4, width=96, height=96, seed=3)
    assert samples.scene_changes(3, 1.4) == []
    assert _shots(path, 1.4) == []


def test_audio_change_detector_finds_silences_and_spectral_changes(tmp_path: Path) -> None:
    duration = 16.0
    path = samples.make_audio(tmp_path / "a.wav", duration=duration, seed=22, gap=0.5)
    truth = samples.scene_changes(22, duration, audio=True, gap=0.5)
    detector = AudioChangeDetector()
    found: list[Boundary] = []
    for clip in iter_clips(path, _ticks(duration), video=False, audio=True):
        found += detector.push(clip.audio)
    found += detector.finish()
    hits = _matched([b.time for b in found], [c.time for c in truth])
    # Changes within the last second have no "after" to compare with.
    within = [c for c in truth if c.time < duration - 1.0 or c.kind == "silence"]
    assert hits >= len(within) - 1 and hits >= len(found) - 1, (found, truth)
    assert {b.kind.value for b in found} == {"silence", "change"}
