"""The v2 engine through the API, over loopback: dynamic segments at known cuts and
dissolves (``min_duration_sec`` honoured), transcription from a subtitle stream (and
none without one), image and audio-only inputs, uncertainty and ``time_based_metadata``.

The engine's own measurements (boundary precision/recall, prefix retrieval) live with
the engine's tests and benchmarks; these prove the server wires them through, and that
an HTTP answer is the engine's vector, bit for bit.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from aioembed import AsyncClient
from aioembed.engine import embed_text_v2, fuse, media_vector
from aioembed.samples import add_subtitles, make_audio, make_image, make_video, scene_changes
from aioembed.v2 import (
    AudioInput,
    Dynamic,
    Fixed,
    ImageInput,
    MediaSource,
    TimeBasedMetadata,
    V2Task,
    VideoInput,
)

SIZE = {"width": 128, "height": 128, "fps": 10}


@pytest.fixture
async def client(live_server: Any) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as c:
        yield c


async def _run(client: AsyncClient, item: Any, **kwargs: Any) -> V2Task:
    task = await client.embed.v2.tasks.create(item, **kwargs)
    return await task.wait(sleep_interval=0.2, timeout=180)


def _spans(result: V2Task, option: str = "visual") -> list[tuple[float, float]]:
    return [
        (float(c.start_sec or 0), float(c.end_sec or 0))
        for c in result.select(option=option, scope="clip")
    ]


@pytest.mark.parametrize(("seed", "transition"), [(11, "cut"), (3, "mixed")])
async def test_dynamic_segments_follow_the_cuts(
    client: AsyncClient, tmp_path: Path, seed: int, transition: str
) -> None:
    video = make_video(
        tmp_path / "v.mp4", duration=12, seed=seed, transition=transition, **SIZE
    )
    truth = [c.time for c in scene_changes(seed, 12, transition=transition)]
    for min_sec in (2, 5):
        result = await _run(
            client,
            VideoInput(
                MediaSource.file(video),
                segmentation=Dynamic(min_sec),
                embedding_option=["visual"],
                embedding_scope=["clip"],
            ),
        )
        spans = _spans(result)
        assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(12, abs=0.05)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(min_sec - 1e-6 <= e - s <= 10 + 1e-6 for s, e in spans), spans
        inner = [s for s, _ in spans[1:]]
        # Every boundary is at a scene change (a dissolve's middle within 0.5 s).
        assert inner and all(min(abs(t - c) for c in truth) <= 0.5 for t in inner), spans
        if min_sec == 2:
            assert len(spans) == 4, spans  # the changes >= 2 s apart and 2 s from the end
        else:
            assert len(spans) == 2, spans  # only the first change >= 5 s in is kept


async def test_transcription_from_a_subtitle_stream_and_none_without(
    client: AsyncClient, tmp_path: Path
) -> None:
    base = make_video(tmp_path / "v.mkv", duration=8, seed=62, **SIZE)
    subbed = add_subtitles(
        base, tmp_path / "subs.mkv", [(0.5, 1.5, "a goal"), (5.0, 6.0, "from a free kick")]
    )
    item = VideoInput(
        MediaSource.file(subbed),
        segmentation=Fixed(4),
        embedding_option=["visual", "transcription"],
    )
    result = await _run(client, item)
    got = {(d.embedding_scope, d.start_sec): d for d in result.select(option="transcription")}
    assert sorted(got, key=str) == [("asset", 0.0), ("clip", 0.0), ("clip", 4.0)]
    first, _ = embed_text_v2("a goal", model="marengo3.0")
    np.testing.assert_array_equal(np.asarray(got[("clip", 0.0)].embedding), first)
    whole, _ = embed_text_v2("a goal from a free kick", model="marengo3.0")
    np.testing.assert_array_equal(np.asarray(got[("asset", 0.0)].embedding), whole)
    # The same pictures without a subtitle stream: no transcription item, still ready.
    plain = await _run(client, VideoInput(MediaSource.file(base), segmentation=Fixed(4)))
    assert plain.status == "ready" and plain.data
    assert {d.embedding_option for d in plain.data} == {"visual", "audio"}


async def test_audio_only_inputs(client: AsyncClient, tmp_path: Path) -> None:
    wav = make_audio(tmp_path / "a.wav", duration=14, seed=22, gap=0.5)
    fixed = await _run(client, AudioInput(MediaSource.file(wav)))  # 3.0: fixed 6 s
    assert _spans(fixed, "audio") == [(0.0, 6.0), (6.0, 12.0), (12.0, 14.0)]
    assert {d.embedding_option for d in fixed.data or []} == {"audio"}  # no subtitles
    assert fixed.metadata is not None and fixed.metadata.input_type == "audio"
    nested = await _run(
        client,
        AudioInput(MediaSource.file(wav), segmentation=Dynamic(2)),
        model_name="marengo3.5",
        embedding_dimension=128,
    )
    spans = _spans(nested, "audio")
    assert len(spans) >= 3 and all(e - s >= 2 - 1e-6 for s, e in spans), spans
    assert all(len(d.embedding) == 128 for d in nested.data or [])
    assert nested.usage is not None and nested.usage.input_tokens == {"audio": 14}


async def test_image_inputs_are_the_engines_vectors(
    client: AsyncClient, live_server: Any, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    png = make_image(tmp_path / "x.png", seed=4, width=64, height=64)
    result = await _run(
        client,
        ImageInput(MediaSource.file(png)),
        model_name="marengo3.5",
        embedding_dimension=32,
        embedding_uncertainty=True,
    )
    (item,) = result.data or []
    assert (item.embedding_option, item.embedding_scope, item.start_sec, item.end_sec) == (
        "visual",
        "asset",
        None,
        None,
    )
    want = media_vector(png, "image", model="marengo3.5")[:32]
    np.testing.assert_array_equal(np.asarray(item.embedding, np.float32), want)
    assert item.embedding_uncertainty is not None and not np.any(item.embedding_uncertainty)
    body = {
        "input_type": "image",
        "model_name": "marengo3.0",
        "image": {"media_source": {"base64_string": base64.b64encode(png.read_bytes()).decode()}},
    }
    async with http.post(live_server.url("embed-v2"), json=body, headers=live_server.headers) as r:
        assert r.status == 200
        answer = await r.json()
    got = np.asarray(answer["data"][0]["embedding"], np.float32)
    np.testing.assert_array_equal(got, media_vector(png, "image", model="marengo3.0"))


async def test_uncertainty_and_time_based_metadata_reach_http(
    client: AsyncClient, tmp_path: Path
) -> None:
    video = make_video(tmp_path / "v.mp4", duration=8, seed=5, **SIZE)
    spread = await _run(
        client,
        VideoInput(
            MediaSource.file(video),
            segmentation=Fixed(4),
            embedding_option=["visual"],
            embedding_scope=["clip"],
        ),
        model_name="marengo3.5",
        embedding_uncertainty=True,
    )
    for d in spread.data or []:
        unc = np.asarray(d.embedding_uncertainty)
        assert unc.shape == (512,) and unc.min() >= 0 and unc.max() > 0  # 40 frames spread
    note = "goal by number 9"
    fused = await _run(
        client,
        VideoInput(
            MediaSource.file(video),
            segmentation=Fixed(4),
            embedding_option=["visual", "audio"],
            embedding_scope=["clip"],
            embedding_type=["separate_embedding", "fused_embedding"],
            time_based_metadata=[TimeBasedMetadata(5.0, 5.0, note)],
        ),
        model_name="marengo3.5",
    )
    by = {(d.start_sec, d.embedding_option): np.asarray(d.embedding) for d in fused.data or []}
    text, _ = embed_text_v2(note, model="marengo3.5")
    for start, with_note in ((0.0, False), (4.0, True)):
        parts = [by[(start, "visual")], by[(start, "audio")]] + ([text] if with_note else [])
        np.testing.assert_allclose(by[(start, "fused")], fuse(parts), atol=1e-6)
