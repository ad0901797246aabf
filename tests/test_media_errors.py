"""Engine errors name the engine's own inputs, in the words of the input's kind.

The engine raises typed media errors naming its own input (a ``MediaField``),
never a form field, and an audio input's errors speak of audio, never of a
"video file".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _faults import set_mkv_duration

from aioembed.engine import MediaError, MediaField, embed_audio

MODEL = "marengo3.0"


async def _embed_audio(server: Any, http: aiohttp.ClientSession, data: bytes, **fields: str) -> Any:
    form = aiohttp.FormData()
    form.add_field("model_name", MODEL)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("audio_file", data, filename="a.wav")
    async with http.post(server.url("embed"), data=form, headers=server.headers) as r:
        return r.status, await r.json()


def test_engine_names_its_own_fields(video_factory: Any) -> None:
    audio = video_factory.audio(duration=4.0)
    with pytest.raises(MediaError) as err:
        embed_audio(audio, model_name=MODEL, start_offset=50.0)
    assert err.value.field is MediaField.START_OFFSET and err.value.code == "parameter_invalid"
    assert "_sec" not in err.value.message and "parameter" not in err.value.message


async def test_broken_audio_is_not_called_a_video(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    mkv = Path(video_factory(duration=5, fps=5, suffix=".mkv")).read_bytes()
    for data in (b"not audio at all\n" * 100, set_mkv_duration(mkv, 3600)):
        status, body = await _embed_audio(live_server, http, data)
        assert status == 400 and body["code"] == "parameter_invalid", body
        assert body["message"].startswith("The audio_file parameter is invalid. "), body
        assert "The audio file is broken" in body["message"], body
        assert "video" not in body["message"], body


async def test_offset_past_the_end_names_the_wire_parameter(
    live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """The server maps ``MediaField.START_OFFSET`` of an audio input to its form field."""
    audio = Path(video_factory.audio(duration=4.0)).read_bytes()
    status, body = await _embed_audio(live_server, http, audio, audio_start_offset_sec="50")
    assert status == 400 and body["code"] == "parameter_invalid", body
    assert body["message"].startswith("The audio_start_offset_sec parameter is invalid. "), body
    assert "audio's duration" in body["message"], body
