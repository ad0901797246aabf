"""The response parser that reads vectors straight into float32 arrays."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import numpy as np
import pytest

from aioembed import AsyncClient
from aioembed._wire import loads, loads_vectors


@pytest.mark.parametrize(
    "body",
    [
        b'{"segments":[{"float":[0.25,-1e-3,3],"start_offset_sec":0.0},{"float": [ 1.5 , 2 ]}]}',
        b'{"text_embedding":{"segments":[{"float":[]}]},"model_name":"m"}',
        # A file name that spells a vector key stays a string: JSON escapes its quotes.
        b'{"input_filename":"a\\"float\\":[1,2].mp4","segments":[{"float":[0.5]}]}',
    ],
)
def test_same_values_as_a_plain_parse(body: bytes) -> None:
    fast, plain = loads_vectors(body), loads(body)
    as_f32 = json.loads(body, object_hook=_float32_vectors)
    assert json.dumps(fast, default=np.ndarray.tolist) == json.dumps(
        as_f32, default=np.ndarray.tolist
    )
    assert fast.keys() == plain.keys()
    if b'"float":[0.5]' in body:
        assert fast["input_filename"] == 'a"float":[1,2].mp4'


def _float32_vectors(obj: dict[str, Any]) -> dict[str, Any]:
    if "float" in obj:
        obj["float"] = np.array(obj["float"], dtype=np.float32)
    return obj


def test_unexpected_shapes_take_the_plain_path() -> None:
    body = b'{"segments":[{"float":[1,"x"]}]}'
    assert loads_vectors(body) == loads(body)


async def test_retrieved_vectors_match_the_json(
    live_server: Any, video_factory: Any, http: aiohttp.ClientSession
) -> None:
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as client:
        task = await client.embed.tasks.create(video_file=video_factory(duration=8, seed=41))
        await task.wait(sleep_interval=0.05)
        result = await task.retrieve()
    async with http.get(
        live_server.url(f"embed/tasks/{task.id}"), headers=live_server.headers
    ) as r:
        raw = json.loads(await r.read())
    expected = [np.array(s["float"], dtype=np.float32) for s in raw["video_embedding"]["segments"]]
    got = [s.vector for s in result.segments]
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in got)
    assert len(got) == len(expected) > 0
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
