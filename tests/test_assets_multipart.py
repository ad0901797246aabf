"""``/v1.3/assets/multipart-uploads`` against the official SDK's ``upload_file`` and raw HTTP.

The servers use a small chunk size so real (small) media spans several parts.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from twelvelabs import AsyncTwelveLabs

from aioembed.server._http_uploads import UPLOADS

CHUNK = 64 * 1024


async def _server(factory: Any, **config: Any) -> Any:
    return await factory(upload_chunk_size=CHUNK, **config)


@pytest.fixture
async def server(live_server_factory: Any) -> Any:
    return await _server(live_server_factory)


@pytest.fixture
async def api(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as c:
        yield c


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _asset_done(api: httpx.AsyncClient, asset_id: str, wait_until: Any) -> dict[str, Any]:
    async def done() -> Any:
        body = (await api.get(f"/assets/{asset_id}")).json()
        return body if body["status"] != "processing" else None

    result: dict[str, Any] = await wait_until(done, timeout=60)
    return result


async def test_official_upload_file_assembles_byte_identical(
    server: Any, api: httpx.AsyncClient, video_factory: Any, wait_until: Any
) -> None:
    video: Path = video_factory(duration=4.0, name="big.mp4")
    assert video.stat().st_size > 2 * CHUNK
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = AsyncTwelveLabs(api_key=server.api_key, base_url=server.base_url, httpx_client=http)
        result = await sdk.multipart_upload.upload_file(str(video), batch_size=2, max_workers=2)
        assert result.asset_url.endswith(f"/assets/{result.asset_id}")
        detail = await _asset_done(api, result.asset_id, wait_until)
        assert detail["status"] == "ready", detail
        assert detail["method"] == "multipart" and detail["size"] == video.stat().st_size
        stored = server.data_dir / "assets" / result.asset_id
        assert _sha(stored) == _sha(video)
        incomplete = [u async for u in await sdk.multipart_upload.list_incomplete_uploads()]
        assert incomplete == []
        assert list((server.data_dir / "parts").iterdir()) == []


async def test_official_status_polling_and_incomplete_list(server: Any, tmp_path: Path) -> None:
    data = tmp_path / "blob.mp4"
    data.write_bytes(b"x" * (2 * CHUNK + 10))
    async with httpx.AsyncClient(timeout=60) as http:
        sdk = AsyncTwelveLabs(api_key=server.api_key, base_url=server.base_url, httpx_client=http)
        session = await sdk.multipart_upload.create(
            filename="blob.mp4", type="video", total_size=data.stat().st_size
        )
        assert session.total_chunks == 3 and session.chunk_size == CHUNK
        listed = [u async for u in await sdk.multipart_upload.list_incomplete_uploads()]
        assert [u.upload_id for u in listed] == [session.upload_id]
        chunks = [c async for c in await sdk.multipart_upload.get_status(session.upload_id)]
        assert [(c.index, c.status) for c in chunks] == [
            (1, "pending"),
            (2, "pending"),
            (3, "pending"),
        ]
        urls = await sdk.multipart_upload.get_additional_presigned_urls(
            session.upload_id, start=2, count=2
        )
        assert [u.chunk_index for u in urls.upload_urls] == [2, 3]


async def test_resent_part_duplicate_report_tamper_and_wrong_size(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    blob = b"".join(bytes([i]) * CHUNK for i in range(2)) + b"tail"
    r = await api.post(
        "/assets/multipart-uploads",
        json={"filename": "v.mp4", "type": "video", "total_size": len(blob)},
    )
    assert r.status_code == 201, r.text
    s = r.json()
    urls = {u["chunk_index"]: u["url"] for u in s["upload_urls"]}
    parts = [blob[:CHUNK], blob[CHUNK : 2 * CHUNK], blob[2 * CHUNK :]]
    async with httpx.AsyncClient() as anon:  # no API key: the URL is the credential
        first = await anon.put(urls[1], content=parts[0])
        again = await anon.put(urls[1], content=parts[0])
        assert first.status_code == again.status_code == 200
        assert first.headers["ETag"] == again.headers["ETag"]
        assert first.headers["ETag"] == f'"{hashlib.md5(parts[0]).hexdigest()}"'
        other = await anon.put(urls[1], content=parts[1])
        assert other.status_code == 403
        assert other.json()["error"]["code"] == "presigned_url_invalid"
        tampered = urls[2][:-4] + ("0000" if not urls[2].endswith("0000") else "1111")
        assert (await anon.put(tampered, content=parts[1])).json()["error"]["code"] == (
            "presigned_url_invalid"
        )
        wrong = await anon.put(urls[3], content=b"short")
        assert wrong.status_code == 400
        etags = {}
        for i in (2, 3):
            if i == 3:  # a fresh URL after the failure
                fresh = await api.post(
                    f"/assets/multipart-uploads/{s['upload_id']}/presigned-urls",
                    json={"start": 3, "count": 1},
                )
                urls[3] = fresh.json()["upload_urls"][0]["url"]
            put = await anon.put(urls[i], content=parts[i - 1])
            assert put.status_code == 200, put.text
            etags[i] = put.headers["ETag"]
    etags[1] = first.headers["ETag"]

    def item(i: int) -> dict[str, Any]:
        return {
            "chunk_index": i,
            "proof": etags[i],
            "proof_type": "etag",
            "chunk_size": len(parts[i - 1]),
        }

    report = f"/assets/multipart-uploads/{s['upload_id']}"
    r1 = (await api.post(report, json={"completed_chunks": [item(1), item(2)]})).json()
    assert r1 == {
        "asset_id": s["asset_id"],
        "processed_chunks": 2,
        "duplicate_chunks": 0,
        "total_completed": 2,
    }
    r2 = (await api.post(report, json={"completed_chunks": [item(2), item(3)]})).json()
    assert (r2["processed_chunks"], r2["duplicate_chunks"], r2["total_completed"]) == (1, 1, 3)
    assert r2["url"].endswith(f"/assets/{s['asset_id']}")
    status = (await api.get(report)).json()
    assert status["status"] == "completed" and status["chunks_completed"] == 3
    assert status["uploaded_size"] == len(blob)


async def test_expired_url_refused_then_refreshed(live_server_factory: Any) -> None:
    server = await _server(live_server_factory)
    service = server.app[UPLOADS]
    service.limits = attrs.evolve(service.limits, url_ttl=-5.0)  # issued already expired
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as api:
        s = (
            await api.post(
                "/assets/multipart-uploads",
                json={"filename": "v.mp4", "type": "video", "total_size": 10},
            )
        ).json()
        expired = await api.put(s["upload_urls"][0]["url"], content=b"0123456789")
        assert expired.status_code == 403
        assert expired.json()["error"]["code"] == "presigned_url_expired"
        service.limits = attrs.evolve(service.limits, url_ttl=3600.0)
        fresh = await api.post(
            f"/assets/multipart-uploads/{s['upload_id']}/presigned-urls",
            json={"start": 1, "count": 1},
        )
        ok = await api.put(fresh.json()["upload_urls"][0]["url"], content=b"0123456789")
        assert ok.status_code == 200 and ok.headers["ETag"]


async def test_restart_keeps_the_session(live_server_factory: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "keep"
    blob = b"a" * CHUNK + b"b" * 100
    first = await _server(live_server_factory, data_dir=data_dir)
    async with httpx.AsyncClient(base_url=first.base_url, headers=first.headers) as api:
        s = (
            await api.post(
                "/assets/multipart-uploads",
                json={"filename": "v.mp4", "type": "video", "total_size": len(blob)},
            )
        ).json()
        one = await api.put(s["upload_urls"][0]["url"], content=blob[:CHUNK])
    await first.runner.cleanup()
    second = await live_server_factory(data_dir=data_dir)
    async with httpx.AsyncClient(base_url=second.base_url, headers=second.headers) as api:
        # The old URL is still valid (same secret) once pointed at the new port.
        old = s["upload_urls"][1]["url"].replace(first.base_url, second.base_url)
        two = await api.put(old, content=blob[CHUNK:])
        assert two.status_code == 200, two.text
        items = [
            {"chunk_index": i, "proof": e, "proof_type": "etag", "chunk_size": n}
            for i, e, n in ((1, one.headers["ETag"], CHUNK), (2, two.headers["ETag"], 100))
        ]
        r = await api.post(
            f"/assets/multipart-uploads/{s['upload_id']}", json={"completed_chunks": items}
        )
        assert r.json()["total_completed"] == 2
    assert (data_dir / "upload-secret").stat().st_mode & 0o777 == 0o600


async def test_expired_sessions_leave_nothing(live_server_factory: Any, wait_until: Any) -> None:
    # The configured sweeper (every 0.2 s) expires the 3 s session by itself.
    server = await _server(live_server_factory, upload_session_ttl=3.0, upload_sweep_interval=0.2)
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as api:
        s = (
            await api.post(
                "/assets/multipart-uploads",
                json={"filename": "v.mp4", "type": "video", "total_size": CHUNK + 1},
            )
        ).json()
        assert (await api.put(s["upload_urls"][0]["url"], content=b"z" * CHUNK)).status_code == 200
        assert any((server.data_dir / "parts").iterdir())

        async def swept() -> bool:
            return not any((server.data_dir / "parts").iterdir())

        await wait_until(swept, timeout=10)
        asset = (await api.get(f"/assets/{s['asset_id']}")).json()
        assert asset["status"] == "failed" and asset["error"]["message"]
        r = await api.post(
            f"/assets/multipart-uploads/{s['upload_id']}/presigned-urls",
            json={"start": 1, "count": 1},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "upload_session_expired"


async def test_configured_limits_are_enforced(live_server_factory: Any, tmp_path: Path) -> None:
    """ServerConfig's asset limits reach the routes: over the direct or multipart size is
    ``413 content_too_large`` (nothing kept), the chunk size and URL lifetime are the
    configured ones, and a session is capped at ``upload_max_chunks``."""
    server = await live_server_factory(
        asset_direct_max_bytes=1000,
        asset_multipart_max_bytes=10 * CHUNK,
        upload_chunk_size=CHUNK,
        upload_max_chunks=4,
        upload_url_ttl=120.0,
    )
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 1001)
    async with httpx.AsyncClient(base_url=server.base_url, headers=server.headers) as api:
        with big.open("rb") as f:
            r = await api.post("/assets", data={"method": "direct"}, files={"file": f})
        assert r.status_code == 413 and r.json()["error"]["code"] == "content_too_large"
        assert list((server.data_dir / "assets").iterdir()) == []

        def create(total: int) -> Any:
            body = {"filename": "v.mp4", "type": "video", "total_size": total}
            return api.post("/assets/multipart-uploads", json=body)

        r = await create(10 * CHUNK + 1)
        assert r.status_code == 413 and r.json()["error"]["code"] == "content_too_large"
        small = (await create(3 * CHUNK)).json()
        assert (small["chunk_size"], small["total_chunks"]) == (CHUNK, 3)
        issued = datetime.fromisoformat(small["upload_urls"][0]["expires_at"])
        assert 100 < (issued - datetime.now(UTC)).total_seconds() <= 121
        # 10 chunks' worth with at most 4 chunks: the chunk size grows to fit.
        grown = (await create(10 * CHUNK)).json()
        assert grown["total_chunks"] == 4 and grown["chunk_size"] == math.ceil(10 * CHUNK / 4)


def test_serve_flags_set_the_asset_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aioembed.server import main as serve_main

    seen: list[Any] = []

    async def fake_serve(config: Any, **_: Any) -> None:
        seen.append(config)

    monkeypatch.setattr("aioembed.server.serve", fake_serve)
    base = ["--data-dir", str(tmp_path), "--api-key", "k"]
    assert serve_main(base) == 0
    flags = [
        "--asset-direct-max-bytes", "50M",
        "--asset-multipart-max-bytes", "2G",
        "--upload-chunk-size", "8M",
        "--upload-max-chunks", "500",
        "--upload-url-ttl", "600",
        "--upload-session-ttl", "7200",
        "--upload-sweep-interval", "30",
    ]  # fmt: skip
    assert serve_main([*base, *flags]) == 0
    default, custom = seen
    assert default.asset_direct_max_bytes == 200 << 20
    assert default.asset_multipart_max_bytes == 10 << 30
    assert (default.upload_chunk_size, default.upload_max_chunks) == (5 << 20, 10_000)
    assert (default.upload_url_ttl, default.upload_session_ttl) == (3600, 86400)
    assert (custom.asset_direct_max_bytes, custom.asset_multipart_max_bytes) == (50 << 20, 2 << 30)
    assert (custom.upload_chunk_size, custom.upload_max_chunks) == (8 << 20, 500)
    assert (custom.upload_url_ttl, custom.upload_session_ttl) == (600, 7200)
    assert custom.upload_sweep_interval == 30
    with pytest.raises(SystemExit):  # refused, not served
        serve_main([*base, "--upload-chunk-size", "0"])
    assert len(seen) == 2
