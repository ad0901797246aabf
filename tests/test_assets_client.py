"""``client.assets`` (the aioembed SDK) against the live server: direct and multipart uploads,
ready waits, failures, and resume after an interrupted upload (parts counted server-side)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from aioembed import AsyncClient
from aioembed.client._assets import AssetFailedError
from aioembed.client._multipart import upload_multipart
from aioembed.server._http_assets import ASSETS
from aioembed.server._http_uploads import UPLOADS

CHUNK = 64 * 1024


@pytest.fixture
async def server(live_server_factory: Any) -> Any:
    return await live_server_factory(upload_chunk_size=CHUNK)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_create_list_wait_delete_and_failure(
    server: Any, video_factory: Any, tmp_path: Path
) -> None:
    video: Path = video_factory(duration=2.0, name="mine.mp4")
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        asset = await client.assets.create(file=video, user_metadata={"k": "v"})
        assert asset.status == "processing"
        seen = [a.status async for a in client.assets.wait_for_ready(asset.id, sleep_interval=0.1)]
        assert seen[-1] == "ready"
        listed = [a.id async for a in client.assets.list(filename="mine")]
        assert listed == [asset.id]
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"junk" * 1000)
        bad = await client.assets.create(file=junk)
        with pytest.raises(AssetFailedError) as info:
            await client.assets.ready(bad.id, timeout=60)
        assert info.value.message
        # One asset per page: the walk crosses pages and stops at the last one.
        assert [a.id async for a in client.assets.list(page_limit=1)] == [bad.id, asset.id]
        await client.assets.delete(asset.id)
        assert [a async for a in client.assets.list(asset_ids=[asset.id])] == []


async def test_upload_direct_and_multipart_are_ready_and_identical(
    server: Any, video_factory: Any, tmp_path: Path
) -> None:
    video: Path = video_factory(duration=4.0, name="up.mp4")
    progress: list[int] = []
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        direct = await client.assets.upload(video, timeout=60)
        assert direct.status == "ready" and direct.method == "direct"
        multi = await client.assets.upload(
            video,
            direct_limit=0,
            state_dir=tmp_path / "state",
            progress=lambda sent, total: progress.append(sent),
            timeout=60,
        )
    assert multi.status == "ready" and multi.method == "multipart"
    assert _sha(server.data_dir / "assets" / multi.id) == _sha(video)
    assert progress[-1] == video.stat().st_size
    assert list((tmp_path / "state").iterdir()) == []  # the resume pointer is gone


class _Stop(Exception):
    pass


async def test_an_interrupted_upload_resumes_sending_only_missing_parts(
    server: Any, tmp_path: Path, wait_until: Any
) -> None:
    blob = tmp_path / "blob.mp4"
    blob.write_bytes(os.urandom(20 * CHUNK + 123))
    state = tmp_path / "state"
    service = server.app[UPLOADS]
    sent: list[int] = []

    def stop_midway(done: int, total: int | None) -> None:
        sent.append(done)
        if len(sent) == 12:
            raise _Stop

    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        args: dict[str, Any] = {
            "filename": "blob.mp4",
            "file_type": "video",
            "user_metadata": None,
            "part_concurrency": 2,
            "state_dir": state,
        }
        with pytest.raises(BaseException) as info:
            # One part in flight: when the 12th reported part stops the run, no other
            # part can still be arriving at the server (it would count twice).
            await upload_multipart(
                client._transport, blob, progress=stop_midway, **{**args, "part_concurrency": 1}
            )
        assert (
            info.group_contains(_Stop)
            if isinstance(info.value, BaseExceptionGroup)
            else isinstance(info.value, _Stop)
        )
        (upload_id,) = service.received
        before = service.received[upload_id]
        rec = await service.store.get(upload_id)
        chunks = await service.store.chunks(upload_id)
        completed = sum(1 for c in chunks.values() if c.status == "completed")
        assert 0 < completed < rec.total_chunks
        asset_id = await upload_multipart(client._transport, blob, progress=None, **args)
    resent = service.received[upload_id] - before
    assert resent == rec.total_chunks - completed
    assert (await service.store.get(upload_id)).status == "completed"
    assets = server.app[ASSETS]

    async def processed() -> bool:
        rec = await assets.store.get(asset_id)
        return rec is not None and rec.status != "processing"

    await wait_until(processed, timeout=60)  # random bytes: it ends failed, bytes kept
    assert _sha(server.data_dir / "assets" / asset_id) == _sha(blob)


_CHILD = """
import asyncio, sys, time
from pathlib import Path
from aioembed import AsyncClient
from aioembed.client._multipart import upload_multipart

async def main() -> None:
    def progress(done, total):
        print(done, flush=True)
        time.sleep(0.05)  # slow enough to be killed mid-upload

    async with AsyncClient(sys.argv[1], base_url=sys.argv[2]) as client:
        await upload_multipart(
            client._transport, Path(sys.argv[3]), filename="blob.mp4", file_type="video",
            user_metadata=None, part_concurrency=1, progress=progress, state_dir=Path(sys.argv[4]),
        )

asyncio.run(main())
"""


async def test_a_killed_client_resumes_sending_only_missing_parts(
    server: Any, tmp_path: Path
) -> None:
    import asyncio
    import signal
    import sys

    blob = tmp_path / "blob.mp4"
    blob.write_bytes(os.urandom(20 * CHUNK + 7))
    state = tmp_path / "state"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        server.api_key,
        server.base_url,
        str(blob),
        str(state),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    lines = 0
    while lines < 12:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        assert line, "the child ended before it was killed"
        lines += 1
    child.send_signal(signal.SIGKILL)
    await child.wait()
    service = server.app[UPLOADS]
    (upload_id,) = service.received
    before = service.received[upload_id]
    rec = await service.store.get(upload_id)
    chunks = await service.store.chunks(upload_id)
    completed = sum(1 for c in chunks.values() if c.status == "completed")
    assert 0 < completed < rec.total_chunks
    async with AsyncClient(server.api_key, base_url=server.base_url) as client:
        await upload_multipart(
            client._transport,
            blob,
            filename="blob.mp4",
            file_type="video",
            user_metadata=None,
            part_concurrency=2,
            progress=None,
            state_dir=state,
        )
    assert service.received[upload_id] - before == rec.total_chunks - completed
    assert (await service.store.get(upload_id)).status == "completed"
