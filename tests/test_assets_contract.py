"""One contract, two ends: every ``/assets`` and multipart-upload body the server sends
parses into the contract's models (what the SDK parses with) and renders back to the
very same JSON, across the states a body can be in (processing, ready, failed asset;
pending, completed, failed chunk; a report before and at completion)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cattrs
import httpx
import pytest

from aioembed import AsyncClient
from aioembed.contract import assets
from aioembed.contract.assets import (
    Asset,
    AssetPage,
    AssetStatus,
    ChunkStatus,
    PartUrls,
    ReportResult,
    UploadCreated,
    UploadDetail,
    UploadPage,
)

CHUNK = 64 * 1024


def round_trip(body: Any, model: type) -> Any:
    """The body as the SDK parses it; fails unless rendering it gives the body back."""
    parsed = assets.structure(body, model)
    assert assets.unstructure(parsed) == body
    return parsed


async def test_asset_bodies_round_trip(
    live_server_factory: Any, video_factory: Any, tmp_path: Path, wait_until: Any
) -> None:
    server = await live_server_factory()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as api:

        async def create(path: Path, **form: str) -> Any:
            with path.open("rb") as f:
                data = {"method": "direct", **form}
                r = await api.post("/assets", data=data, files={"file": f})
            assert r.status_code == 201, r.text
            return r.json()

        video = video_factory(duration=2.0, name="clip.mp4")
        body = await create(video, user_metadata='{"team": "a", "n": 3, "tags": ["x"]}')
        created = round_trip(body, Asset)
        assert created.status is AssetStatus.PROCESSING and created.user_metadata["n"] == 3
        assert "size" not in body and "error" not in body and "technical_metadata" not in body
        bad = round_trip(await create(junk), Asset)

        async def settled(asset_id: str) -> Any:
            body = (await api.get(f"/assets/{asset_id}")).json()
            return body if body["status"] != "processing" else None

        ready = round_trip(await wait_until(lambda: settled(created.id), timeout=60), Asset)
        assert ready.status is AssetStatus.READY and ready.size == video.stat().st_size
        assert ready.duration and ready.technical_metadata and ready.error is None
        failed = round_trip(await wait_until(lambda: settled(bad.id), timeout=60), Asset)
        assert failed.status is AssetStatus.FAILED and failed.error and failed.error.message
        assert failed.size is None

        page = round_trip((await api.get("/assets", params={"page_limit": 1})).json(), AssetPage)
        assert len(page.data) == 1 and page.page_info.total_results == 2

    # The SDK's own calls give the same models.
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        assert await client.assets.retrieve(created.id) == ready
        assert [a.id async for a in client.assets.list()] == [bad.id, created.id]


async def test_upload_bodies_round_trip(live_server_factory: Any) -> None:
    server = await live_server_factory(upload_chunk_size=CHUNK)
    blob = b"a" * CHUNK + b"b" * CHUNK + b"tail"
    parts = {1: blob[:CHUNK], 2: blob[CHUNK : 2 * CHUNK], 3: blob[2 * CHUNK :]}
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as api:
        r = await api.post(
            "/assets/multipart-uploads",
            json={"filename": "v.mp4", "type": "video", "total_size": len(blob)},
        )
        created = round_trip(r.json(), UploadCreated)
        assert (created.chunk_size, created.total_chunks) == (CHUNK, 3)
        assert created.upload_headers == {} and len(created.upload_urls) == 3
        base = f"/assets/multipart-uploads/{created.upload_id}"
        urls = {u.chunk_index: u.url for u in created.upload_urls}

        async with httpx.AsyncClient() as anon:
            one = await anon.put(urls[1], content=parts[1])
            two = await anon.put(urls[2], content=parts[2])
            assert (await anon.put(urls[3], content=b"short")).status_code == 400
        etag = {1: one.headers["ETag"], 2: two.headers["ETag"]}
        assert etag[1] == f'"{hashlib.md5(parts[1]).hexdigest()}"'

        def report(*indexes: int) -> dict[str, Any]:
            items = [
                assets.ChunkReport(chunk_index=i, proof=etag[i], chunk_size=CHUNK) for i in indexes
            ]
            return assets.unstructure(assets.Report(items))  # the request the SDK sends

        partial = round_trip((await api.post(base, json=report(1))).json(), ReportResult)
        assert (partial.processed_chunks, partial.total_completed, partial.url) == (1, 1, None)

        detail = round_trip((await api.get(base)).json(), UploadDetail)
        states = {c.index: c.status for c in detail.uploaded_chunks}
        assert states == {1: ChunkStatus.COMPLETED, 2: ChunkStatus.PENDING, 3: ChunkStatus.FAILED}
        failed = detail.uploaded_chunks[2]
        assert failed.error and failed.updated_at and failed.uploaded_at is None
        assert (detail.chunks_completed, detail.chunks_failed, detail.chunks_pending) == (1, 1, 1)

        listed = round_trip((await api.get("/assets/multipart-uploads")).json(), UploadPage)
        assert [u.upload_id for u in listed.data] == [created.upload_id]

        more = await api.post(f"{base}/presigned-urls", json={"start": 3, "count": 1})
        fresh = round_trip(more.json(), PartUrls)
        assert (fresh.start_index, fresh.count, fresh.upload_urls[0].chunk_index) == (3, 1, 3)
        async with httpx.AsyncClient() as anon:
            three = await anon.put(fresh.upload_urls[0].url, content=parts[3])
        etag[3] = three.headers["ETag"]
        last = {"chunk_index": 3, "proof": etag[3], "proof_type": "etag", "chunk_size": 4}
        both = [report(2)["completed_chunks"][0], last]
        r = await api.post(base, json={"completed_chunks": both})
        done = round_trip(r.json(), ReportResult)
        assert done.total_completed == 3 and done.url and done.url.endswith(created.asset_id)


def test_missing_required_fields_are_refused() -> None:
    """What the official SDK requires, the models require: a body without it is an error
    (the SDK's transport reports it as a malformed answer), never a half-filled model."""
    with pytest.raises(cattrs.BaseValidationError):
        assets.structure({"status": "ready"}, Asset)
    with pytest.raises(cattrs.BaseValidationError):
        assets.structure({"_id": "a" * 24, "status": "almost"}, Asset)
    body = {"upload_id": "u", "status": "active", "total_size": 1, "chunk_size": 1}
    with pytest.raises(cattrs.BaseValidationError):
        assets.structure({"data": [body], "page_info": None}, UploadPage)
