"""The engine's Embed API v2 half: segmentation rules, shot and audio-change
detection, and (below) ``embed_v2`` on tiny generated media."""

from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import attrs
import numpy as np
import pytest

from aioembed import samples
from aioembed.engine import MediaError, embed_text, embed_video
from aioembed.engine._decode import iter_clips
from aioembed.engine._segments import (
    MAX_HELD_SHOT,
    DynamicCutter,
    dynamic_spans,
    fixed_spans,
    split_long,
)
from aioembed.engine._shots import AudioChangeDetector, Boundary, ShotDetector
from aioembed.engine._subtitles import Cue, read_cues
from aioembed.engine._v2 import (
    Dynamic,
    Fixed,
    MetadataEntry,
    Scope,
    V2Request,
    count_tokens,
    embed_text_v2,
    embed_v2,
    fuse,
    media_vector,
    probe_v2,
)

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
def test_fixed_spans(
    start: float, end: float, d: float, expected: list[tuple[float, float]]
) -> None:
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


# --------------------------------------------------------------------------- embed_v2

SIZE = {"width": 96, "height": 96}


@pytest.fixture(scope="module")
def clip12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2")
    return samples.make_video(root / "v.mp4", duration=12, seed=3, transition="mixed", **SIZE)


@pytest.fixture(scope="module")
def subtitled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v2s")
    video = samples.make_video(root / "v.mkv", duration=6, seed=5, **SIZE)
    return samples.add_subtitles(
        video,
        root / "subs.mkv",
        [(0.0, 0.5, "ignored track")],
        [(0.5, 1.5, "the red car"), (2.2, 3.0, "turns left"), (5.0, 5.5, "and stops")],
        default=1,
    )


def _norm(v: np.ndarray) -> float:
    return float(np.linalg.norm(v.astype(np.float64)))


def test_items_come_in_contract_order_with_fused_vectors(clip12: Path) -> None:
    request = V2Request(
        model="marengo3.0",
        input_kind="video",
        segmentation=Fixed(4),
        options=("audio", "visual"),
        types=("separate_embedding", "fused_embedding"),
    )
    result = embed_v2(clip12, request)
    got = [(s.scope, s.start, s.option) for s in result.segments]
    clips = [(Scope.CLIP, float(a), o) for a in (0, 4, 8) for o in ("audio", "visual", "fused")]
    assert got == clips + [(Scope.ASSET, 0.0, o) for o in ("audio", "visual", "fused")]
    for s in result.segments:
        assert s.vector.dtype == np.float32 and s.vector.shape == (512,)
        assert _norm(s.vector) == pytest.approx(1.0, abs=1e-5)
        assert s.uncertainty is None
    by = {(s.scope, s.start, s.option): s.vector for s in result.segments}
    expected = fuse([by[(Scope.CLIP, 4.0, "audio")], by[(Scope.CLIP, 4.0, "visual")]])
    np.testing.assert_array_equal(by[(Scope.CLIP, 4.0, "fused")], expected)
    assert result.media is not None and result.media.duration == pytest.approx(12, abs=0.1)
    assert result.usage.input_tokens == {"video": 12}


def test_marengo30_clips_are_the_v1_vectors(clip12: Path) -> None:
    request = V2Request(model="marengo3.0", input_kind="video", segmentation=Fixed(6))
    v2 = [s for s in embed_v2(clip12, request).segments if s.scope is Scope.CLIP]
    v1 = embed_video(clip12, model_name="marengo3.0", clip_length=6)
    for option in ("visual", "audio"):
        a = [s.vector for s in v2 if s.option == option]
        b = [s.vector for s in v1 if s.option == option]
        np.testing.assert_allclose(np.stack(a), np.stack(b), atol=1e-6)


def test_dynamic_segments_follow_detected_shots(clip12: Path) -> None:
    truth = [c.time for c in samples.scene_changes(3, 12, transition="mixed")]
    for m in (2, 4):
        request = V2Request(
            model="marengo3.0", input_kind="video", segmentation=Dynamic(m), options=("visual",)
        )
        spans = [(s.start, s.end) for s in embed_v2(clip12, request).segments if s.scope == "clip"]
        assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(12)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(m - 1e-6 <= b - a <= 10 + 1e-6 for a, b in spans), spans
        inner = [a for a, _ in spans[1:]]
        assert inner and all(min(abs(t - c) for c in truth) <= 0.5 for t in inner), spans
    # M = 4 ignores the change at 2.6 s (and joins the short end), M = 2 keeps it.
    assert len(spans) < 4


def test_marengo35_dimension_is_a_prefix_not_renormalised(clip12: Path) -> None:
    def run(dimension: int | None) -> list[np.ndarray]:
        request = V2Request(
            model="marengo3.5",
            input_kind="video",
            segmentation=Fixed(6),
            types=("separate_embedding", "fused_embedding"),
            dimension=dimension,
            metadata=(MetadataEntry(7.0, 7.0, "goal by number 9"),),
        )
        return [s.vector for s in embed_v2(clip12, request).segments]

    full, short = run(None), run(128)
    assert len(full) == len(short)
    for a, b in zip(full, short, strict=True):
        assert b.shape == (128,)
        np.testing.assert_array_equal(a[:128], b)
        assert _norm(b) < 1.0
    text, _ = embed_text_v2("goal by number 9", model="marengo3.5", dimension=64)
    whole, _ = embed_text_v2("goal by number 9", model="marengo3.5")
    np.testing.assert_array_equal(whole[:64], text)


def test_time_based_metadata_joins_the_fused_vectors_it_overlaps(clip12: Path) -> None:
    entry = MetadataEntry(7.0, 7.0, "goal by number 9")  # a point event in [6, 12)
    request = V2Request(
        model="marengo3.5",
        input_kind="video",
        segmentation=Fixed(6),
        types=("separate_embedding", "fused_embedding"),
        scopes=("clip",),
        metadata=(entry,),
    )
    items = embed_v2(clip12, request).segments
    by = {(s.start, s.option): s.vector for s in items}
    text, _ = embed_text_v2(entry.text, model="marengo3.5")
    np.testing.assert_array_equal(
        by[(6.0, "fused")], fuse([by[(6.0, "visual")], by[(6.0, "audio")], text])
    )
    np.testing.assert_array_equal(
        by[(0.0, "fused")], fuse([by[(0.0, "visual")], by[(0.0, "audio")]])
    )


def test_range_and_uncertainty(clip12: Path) -> None:
    request = V2Request(
        model="marengo3.5",
        input_kind="video",
        start_sec=1.5,
        end_sec=40,  # past the end: the end
        segmentation=Fixed(5),
        scopes=("clip",),
        uncertainty=True,
        dimension=64,
    )
    result = embed_v2(clip12, request)
    spans = sorted({(s.start, s.end) for s in result.segments})
    assert spans == [(1.5, 6.5), (6.5, 11.5)]  # the 0.5 s remainder is dropped
    assert result.media is not None and result.media.start_offset_sec == 1.5
    for s in result.segments:
        assert s.uncertainty is not None and s.uncertainty.shape == (64,)
        assert (s.uncertainty >= 0).all() and s.uncertainty.max() > 0
    with pytest.raises(MediaError) as err:
        embed_v2(clip12, V2Request(model="marengo3.0", input_kind="video", start_sec=30))
    assert err.value.code == "parameter_invalid"


def test_transcription_from_the_default_subtitle_stream(subtitled: Path) -> None:
    request = V2Request(
        model="marengo3.0", input_kind="video", segmentation=Fixed(2), options=("transcription",)
    )
    result = embed_v2(subtitled, request)
    assert result.media is not None and result.media.has_subtitles
    got = {(s.scope, s.start): s.vector for s in result.segments}
    # [4, 6) has "and stops"; [2, 4) "turns left"; [0, 2) "the red car": all three clips.
    assert sorted(got) == [
        (Scope.ASSET, 0.0),
        (Scope.CLIP, 0.0),
        (Scope.CLIP, 2.0),
        (Scope.CLIP, 4.0),
    ]
    text, _ = embed_text_v2("turns left", model="marengo3.0")
    np.testing.assert_array_equal(got[(Scope.CLIP, 2.0)], text)
    whole, _ = embed_text_v2("the red car turns left and stops", model="marengo3.0")
    np.testing.assert_array_equal(got[(Scope.ASSET, 0.0)], whole)
    # A segment without a cue gets no transcription item; the others still come.
    request = attrs.evolve(request, segmentation=Fixed(3), options=("visual", "transcription"))
    items = [
        (s.start, s.option) for s in embed_v2(subtitled, request).segments if s.scope == "clip"
    ]
    assert items == [
        (0.0, "visual"),
        (0.0, "transcription"),
        (3.0, "visual"),
        (3.0, "transcription"),
    ]


def test_no_subtitle_stream_means_no_transcription_item(clip12: Path) -> None:
    request = V2Request(model="marengo3.0", input_kind="video", segmentation=Fixed(6))
    result = embed_v2(clip12, request)  # default options: visual, audio, transcription
    assert {s.option for s in result.segments} == {"visual", "audio"}
    assert result.media is not None and not result.media.has_subtitles


def test_audio_and_image_inputs(tmp_path: Path) -> None:
    wav = samples.make_audio(tmp_path / "a.wav", duration=14, seed=22, gap=0.5)
    assert probe_v2(wav, "audio").duration == pytest.approx(14, abs=0.05)
    with pytest.raises(MediaError) as err:
        probe_v2(wav, "video")
    assert err.value.code == "video_file_broken"
    result = embed_v2(wav, V2Request(model="marengo3.0", input_kind="audio"))
    clips = [(s.start, s.end, s.option) for s in result.segments if s.scope == "clip"]
    # 3.0 audio: fixed 6 s by default; no subtitles, so audio items only.
    assert clips == [(0.0, 6.0, "audio"), (6.0, 12.0, "audio"), (12.0, 14.0, "audio")]
    result = embed_v2(wav, V2Request(model="marengo3.5", input_kind="audio"))
    spans = [(s.start, s.end) for s in result.segments if s.scope == "clip"]
    assert len(spans) >= 3 and all(b - a >= 2 - 1e-6 for a, b in spans)
    with pytest.raises(ValueError):
        embed_v2(wav, V2Request(model="marengo3.5", input_kind="audio", options=("visual",)))

    png = samples.make_image(tmp_path / "x.png", seed=4, width=64, height=64)
    request = V2Request(model="marengo3.5", input_kind="image", uncertainty=True, dimension=32)
    (item,) = embed_v2(png, request).segments
    assert (item.option, item.scope, item.start, item.end) == ("visual", "asset", None, None)
    assert item.vector.shape == (32,) and item.uncertainty is not None
    assert not item.uncertainty.any()  # one frame: no spread
    np.testing.assert_array_equal(media_vector(png, "image", model="marengo3.5")[:32], item.vector)


def test_text_and_bad_input(tmp_path: Path) -> None:
    vec, usage = embed_text_v2("a red car, turning", model="marengo3.0")
    np.testing.assert_array_equal(vec, embed_text("a red car, turning", model_name="marengo3.0"))
    assert usage.input_tokens == {"text": 5} == {"text": count_tokens("a red car, turning")}
    cut, usage = embed_text_v2("a red car, turning", model="marengo3.5", truncate_at=3)
    assert usage.input_tokens == {"text": 3} and usage.truncated
    np.testing.assert_array_equal(cut, embed_text_v2("a red car", model="marengo3.5")[0])
    assert not embed_text_v2("a red car", model="marengo3.5", truncate_at=3)[1].truncated
    near, _ = embed_text_v2("the red car turning left", model="marengo3.5", dimension=64)
    far, _ = embed_text_v2("quarterly tax report", model="marengo3.5", dimension=64)
    query, _ = embed_text_v2("a red car, turning", model="marengo3.5", dimension=64)
    cos = [float(query @ v) / _norm(query) / _norm(v) for v in (near, far)]
    assert cos[0] > cos[1] + 0.2, cos
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError) as err:
        embed_v2(broken, V2Request(model="marengo3.0", input_kind="video"))
    assert err.value.code == "video_file_broken"
    with pytest.raises(MediaError) as err:
        embed_v2(broken, V2Request(model="marengo3.5", input_kind="image"))
    assert err.value.code == "parameter_invalid"
    with pytest.raises(ValueError):
        embed_v2(broken, V2Request(model="marengo3.0", input_kind="video", dimension=256))
    with pytest.raises(KeyError):
        embed_v2(broken, V2Request(model="Marengo-retrieval-2.7", input_kind="video"))


def test_fixed_spans_with_short_segments_tile_the_range() -> None:
    spans = fixed_spans(0, 30, 0.5)
    assert len(spans) == 60 and spans[-1] == (29.5, 30.0)


def test_peak_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    """One pass, media dropped segment by segment: 4x the length, about the same peak."""

    def peak(duration: float) -> int:
        path = samples.make_video(
            tmp_path / f"{duration:g}.mp4", duration=duration, seed=8, width=64, height=64
        )
        request = V2Request(
            model="marengo3.0",
            input_kind="video",
            segmentation=Dynamic(2),
            scopes=("asset",),  # a result of constant size
        )
        tracemalloc.start()
        try:
            embed_v2(path, request)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(8)  # warm the caches (projections, filters): they are not the pass's
    short, long = peak(8), peak(32)
    # Holding the whole input would add ~76 kB per second (sound and frames): 1.8 MB,
    # and measures 4.3 MB -> 6.9 MB with one tick for the whole file.
    assert long < short * 1.25 + 300_000, (short, long)


def test_subtitle_stream_choice_and_empty_cues(tmp_path: Path, subtitled: Path) -> None:
    video = samples.make_video(tmp_path / "v.mkv", duration=4, seed=6, **SIZE)
    first = samples.add_subtitles(video, tmp_path / "first.mkv", [(1, 2, "one")], [(1, 2, "two")])
    assert read_cues(first) == [Cue(1.0, 2.0, "one")]  # no default flag: the first stream
    assert [c.text for c in read_cues(subtitled) or []] == [
        "the red car",
        "turns left",
        "and stops",
    ]
    assert read_cues(video) is None
    blank = samples.add_subtitles(video, tmp_path / "blank.mkv", [(0.5, 3.0, "<i> </i>")])
    request = V2Request(model="marengo3.0", input_kind="video", segmentation=Fixed(2))
    result = embed_v2(blank, request)
    assert {s.option for s in result.segments} == {"visual", "audio"}
    assert result.media is not None and result.media.has_subtitles
