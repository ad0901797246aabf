"""``/v1.3/assets`` against the official ``twelvelabs`` SDK (1.3.6) and raw HTTP.

Real server over loopback, real media from :mod:`aioembed.samples`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from twelvelabs import AsyncTwelveLabs
from twelvelabs.errors import BadRequestError, ConflictError, NotFoundError

from aioembed.server._http_assets import ASSETS

ASSETS_URL = "/v1.3/assets"


@pytest.fixture
async def sdk(live_server: Any) -> AsyncIterator[AsyncTwelveLabs]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield AsyncTwelveLabs(
            api_key=live_server.api_key, base_url=live_server.base_url, httpx_client=http
        )


async def _ready(sdk: AsyncTwelveLabs, asset_id: str, wait_until: Any) -> Any:
    async def done() -> Any:
        detail = await sdk.assets.retrieve(asset_id)
        return detail if detail.status != "processing" else None

    return await wait_until(done, timeout=60)


async def test_direct_create_retrieve_list_delete(
    sdk: AsyncTwelveLabs, live_server: Any, video_factory: Any, wait_until: Any
) -> None:
    video: Path = video_factory(duration=3.0, name="clip.mp4")
    with video.open("rb") as f:
        created = await sdk.assets.create(
            method="direct", file=f, user_metadata='{"team": "a", "n": 3}'
        )
    assert created.id and len(created.id) == 24
    assert created.status == "processing" and created.method == "direct"
    assert created.filename == "clip.mp4" and created.file_type == "video/mp4"
    assert created.user_metadata == {"team": "a", "n": 3}

    detail = await _ready(sdk, created.id, wait_until)
    assert detail.status == "ready", detail
    assert detail.size == video.stat().st_size
    assert detail.duration == pytest.approx(3.0, abs=0.2)
    stored = live_server.data_dir / "assets" / created.id
    assert (
        hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(video.read_bytes()).digest()
    )

    listed = [a async for a in await sdk.assets.list(asset_types=["video"], filename="CLIP")]
    assert [a.id for a in listed] == [created.id]
    assert [a async for a in await sdk.assets.list(asset_types=["image"])] == []

    await sdk.assets.delete(created.id)
    with pytest.raises(NotFoundError):
        await sdk.assets.retrieve(created.id)
    assert not stored.exists()


async def test_url_create_and_a_broken_file_fails_with_a_message(
    sdk: AsyncTwelveLabs, static_server: Any, video_factory: Any, tmp_path: Path, wait_until: Any
) -> None:
    url = static_server.add(video_factory(duration=2.0, name="remote.mp4"))
    created = await sdk.assets.create(method="url", url=url)
    assert created.method == "url" and created.filename == "remote.mp4"
    detail = await _ready(sdk, created.id, wait_until)
    assert detail.status == "ready" and detail.duration == pytest.approx(2.0, abs=0.2)

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with junk.open("rb") as f:
        bad = await sdk.assets.create(method="direct", file=f)
    failed = await _ready(sdk, bad.id, wait_until)
    assert failed.status == "failed" and failed.error.message


async def test_url_create_refuses_a_private_address(sdk: AsyncTwelveLabs) -> None:
    with pytest.raises(BadRequestError):
        await sdk.assets.create(method="url", url="http://169.254.169.254/latest/meta-data")


async def test_bad_input_gets_the_v2_error_body(live_server: Any) -> None:
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=live_server.headers) as c:
        r = await c.post("/assets", files={"method": (None, "ftp")})
        assert r.status_code == 400
        body = r.json()["error"]
        assert (
            body["code"] == "parameter_invalid" and body["request_id"] == r.headers["x-request-id"]
        )
        r = await c.post("/assets", files={"method": (None, "url"), "user_metadata": (None, "{")})
        assert r.json()["error"]["code"] == "parameter_invalid"
        r = await c.get("/assets", params={"bogus": "1"})
        assert r.json()["error"]["code"] == "parameter_unknown"
        r = await c.get("/assets", params={"page": 99})
        assert r.status_code == 200 and r.json()["data"] == []
        r = await c.get("/assets/" + "a" * 24, headers={"x-api-key": "wrong"})
        assert r.status_code == 401


async def test_direct_create_over_the_limit_is_413(
    live_server_factory: Any, tmp_path: Path
) -> None:
    # The image limit (32 MB by default) applies by kind; a tiny one here.
    from aioembed.server._assets import AssetLimits

    server = await live_server_factory()
    server.app[ASSETS].limits = AssetLimits(image=1000)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2000)
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as c:
        with big.open("rb") as f:
            r = await c.post("/assets", data={"method": "direct"}, files={"file": f})
    assert r.status_code == 413 and r.json()["error"]["code"] == "content_too_large"
    assert list((server.data_dir / "assets").iterdir()) == []


async def test_delete_while_a_task_uses_it_is_409(
    sdk: AsyncTwelveLabs, live_server: Any, video_factory: Any, wait_until: Any
) -> None:
    with video_factory(duration=2.0).open("rb") as f:
        created = await sdk.assets.create(method="direct", file=f)
    await _ready(sdk, created.id, wait_until)
    service = live_server.app[ASSETS]
    from aioembed.server._store import owner_of

    # What a v2 task does while it is processing: hold the asset.
    async with service.use(owner_of(live_server.api_key), created.id) as path:
        assert path.is_file()
        for force in (False, True):
            with pytest.raises(ConflictError) as info:
                await sdk.assets.delete(created.id, force=force)
            assert info.value.body["error"]["code"] == "asset_in_use"
    await sdk.assets.delete(created.id)
