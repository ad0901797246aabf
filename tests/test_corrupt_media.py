"""A corpus of broken and out-of-contract media, generated here, through a real batch.

Each input gets its contract error: a ``400`` at create when the server probes uploads
(the default), or a ``failed`` task when it checks them in the task, always with the
same code and a message that says what is wrong, and never the server's own file paths.
A good video in the same batch is embedded as usual, and the server goes on serving.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest
from _faults import drop_box, set_mkv_duration

from aioembed import AsyncClient, BadRequestError, TaskFailedError
from aioembed.client import Journal

#: name -> (contract code, words the message must contain, refused at create when probing)
CORPUS: dict[str, tuple[str, str, bool]] = {
    "empty.mp4": ("video_file_broken", "empty", True),
    "no-moov.mp4": ("video_file_broken", "cannot open", True),
    "random-bytes.mp4": ("video_file_broken", "cannot open", True),
    "text.mp4": ("video_file_broken", "cannot open", True),
    "audio-only.mp4": ("video_file_broken", "no video stream", True),
    "one-by-one.mp4": ("video_resolution_too_low", "1x1", True),
    "three-seconds.mp4": ("video_duration_too_short", "too short", True),
    "huge-duration.mkv": ("video_duration_too_long", "too long", True),
    "lying-duration.mkv": ("video_file_broken", "truncated", False),
    "garbage-frames.mp4": ("video_file_broken", "does not decode", True),
    "image.mp4": ("video_duration_too_short", "too short", True),
}


def _garbage_frames(data: bytes) -> bytes:
    """The mp4 with its media data replaced by noise (headers intact)."""
    i = 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if kind == b"mdat":
            out = bytearray(data)
            out[i + 16 : i + size] = random.Random(2).randbytes(size - 16)
            return bytes(out)
        i += size
    raise AssertionError("no mdat")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from aioembed.samples import make_audio, make_image, make_video

    d = tmp_path_factory.mktemp("corpus")
    mp4 = make_video(d / "base.mp4", duration=5, fps=5, seed=61)
    mkv = make_video(d / "base.mkv", duration=5, fps=5, seed=61)
    data = Path(mp4).read_bytes()
    blobs = {
        "empty.mp4": b"",
        "no-moov.mp4": drop_box(data, b"moov"),
        "random-bytes.mp4": random.Random(1).randbytes(60_000),
        "text.mp4": b"this is a text file, not a video\n" * 400,
        "huge-duration.mkv": set_mkv_duration(Path(mkv).read_bytes(), 1e7),
        "lying-duration.mkv": set_mkv_duration(Path(mkv).read_bytes(), 3600),
        "garbage-frames.mp4": _garbage_frames(data),
    }
    files = {}
    for name, blob in blobs.items():
        files[name] = d / name
        files[name].write_bytes(blob)
    make_audio(d / "audio.m4a", duration=6, seed=62)
    files["audio-only.mp4"] = d / "audio-only.mp4"
    files["audio-only.mp4"].write_bytes((d / "audio.m4a").read_bytes())
    files["one-by-one.mp4"] = Path(
        make_video(d / "one-by-one.mp4", duration=5, width=1, height=1, fps=5, codec="mpeg4")
    )
    files["three-seconds.mp4"] = Path(make_video(d / "three-seconds.mp4", duration=3, fps=5))
    make_image(d / "still.png", seed=63)
    files["image.mp4"] = d / "image.mp4"
    files["image.mp4"].write_bytes((d / "still.png").read_bytes())
    files["good.mp4"] = Path(mp4)
    assert set(files) == {*CORPUS, "good.mp4"}
    return files


@pytest.mark.parametrize("probe_on_create", [True, False], ids=["probe-at-create", "check-in-task"])
async def test_corrupt_corpus_gets_contract_errors(
    live_server_factory: Any, corpus: dict[str, Path], tmp_path: Path, probe_on_create: bool
) -> None:
    server = await live_server_factory(probe_on_create=probe_on_create, workers=2)
    names = sorted(CORPUS) + ["good.mp4"]
    journal = tmp_path / "corpus.journal.sqlite"
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        batch = client.embed.tasks.embed_many(
            [corpus[n] for n in names], journal=journal, ordered=True, sleep_interval=0.05
        )
        async with batch as stream:
            outcomes = {names[o.index]: o async for o in stream}
        assert (await client.embed.tasks.list_page()).page_info is not None  # still serving

    good = outcomes.pop("good.mp4")
    assert good.ok and good.task is not None and good.task.segments
    data_dir = str(server.data_dir)
    for name, o in outcomes.items():
        code, words, refused_at_create = CORPUS[name]
        assert not o.ok, name
        if probe_on_create and refused_at_create:
            assert isinstance(o.error, BadRequestError), (name, o.error)
            assert o.task_id is None  # nothing was created
            got, message = o.error.code, o.error.message
        else:
            assert isinstance(o.error, TaskFailedError), (name, o.error)
            assert o.error.error is not None and o.task_id is not None
            got, message = o.error.error.code, o.error.error.message
        assert got == code, (name, got, message)
        assert words in message, (name, message)
        # What went wrong, in the client's terms: never the server's files.
        assert data_dir not in message and ".part" not in message, (name, message)
        assert "/media/" not in message and "/uploads/" not in message, (name, message)
    # Bad inputs are final: the journal records each with its code, so a rerun skips them.
    j = Journal(journal)
    try:
        assert await j.counts() == {"failed": len(CORPUS), "ready": 1}
    finally:
        await j.close()
    assert list((server.data_dir / "uploads").iterdir()) == []


async def test_corrupt_corpus_through_sync_embed(
    live_server: Any, corpus: dict[str, Path], http: Any
) -> None:
    """The same files as image or audio inputs of ``POST /embed``: a 400 naming the
    parameter, never a 5xx, never a server path."""
    import aiohttp

    for name in sorted(CORPUS):
        for field in ("image_file", "audio_file"):
            data = aiohttp.FormData()
            data.add_field("model_name", "Marengo-retrieval-2.7")
            data.add_field(field, corpus[name].read_bytes(), filename=name)
            async with http.post(
                live_server.url("embed"), data=data, headers=live_server.headers
            ) as r:
                body = await r.json()
            if r.status == 200:
                continue  # a decodable video has pictures and sound: usable as either
            assert r.status == 400, (name, field, r.status, body)
            assert body["code"] == "parameter_invalid" and field in body["message"], body
            assert str(live_server.data_dir) not in body["message"], body
