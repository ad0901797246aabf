"""The S3 media store's own rules, beyond the MediaStore conformance suite (moto on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("aiobotocore", reason="aiobotocore (the `scale` extra) is missing")

from aioembed.server._s3_media import MIN_PART, S3Location, S3MediaStore  # noqa: E402
from aioembed.server._store import new_task_id  # noqa: E402


@pytest.mark.parametrize(
    "url",
    ["s3://", "http://bucket/x", "s3://ab/x", "s3://bucket/x?y=1", "s3://key:secret@bucket/x"],
)
def test_location_refuses_what_is_not_a_bucket_and_prefix(url: str) -> None:
    with pytest.raises(ValueError) as info:
        S3Location.parse(url)
    assert "secret" not in str(info.value)


def test_location_keys_join_the_prefix() -> None:
    assert S3Location.parse("s3://bucket/a/b/").key("media", "x") == "a/b/media/x"
    assert S3Location.parse("s3://bucket").key("media", "x") == "media/x"


async def test_parts_go_up_one_at_a_time_and_downloads_leave_no_file(
    s3_endpoint: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    location = S3Location.parse(f"s3://b-{new_task_id()}/p")
    async with S3MediaStore(
        location, scratch=tmp_path, endpoint_url=s3_endpoint, part_size=MIN_PART
    ) as media:
        await media._s3.create_bucket(Bucket=location.bucket)
        task_id = new_task_id()
        source = tmp_path / "in.part"
        source.write_bytes(b"v" * (2 * MIN_PART + 1))
        await media.adopt(task_id, source)
        head = await media._s3.head_object(Bucket=location.bucket, Key=f"p/media/{task_id}")
        assert head["ETag"].endswith('-3"')  # a multipart object of three parts
        async with media.local(task_id) as path:
            assert path is not None and path.stat().st_size == 2 * MIN_PART + 1
        assert list(tmp_path.iterdir()) == []  # the scratch copy is gone, the source moved
        # A fresh object survives a sweep inside the grace period (another replica's).
        assert await media.sweep([]) == 0


async def test_session_parts_are_one_s3_multipart_upload(
    s3_endpoint: str, s3_env: dict[str, str], postgres_dsn: str, tmp_path: Path
) -> None:
    import hashlib

    from aioembed.server._parts import PartTooLargeError
    from aioembed.server._pg_assets import PostgresUploadStore
    from aioembed.server._s3_parts import S3PartStore

    ids = PostgresUploadStore(postgres_dsn, schema=f"t_{new_task_id()}")
    await ids.open()
    location = S3Location.parse(f"s3://b-{new_task_id()}/p")
    try:
        async with S3MediaStore(location, scratch=tmp_path, endpoint_url=s3_endpoint) as media:
            s3 = media.client
            await s3.create_bucket(Bucket=location.bucket)
            replica_a, replica_b = S3PartStore(media, ids), S3PartStore(media, ids)
            upload_id = new_task_id()
            first, last = bytes(range(256)) * (MIN_PART // 256), b"tail" * 25

            async def body(data: bytes) -> AsyncIterator[bytes]:
                yield data[:1000]
                yield data[1000:]

            # Parts through two replicas, out of order, one re-sent (the last one counts).
            await replica_b.write(upload_id, 2, body(last), limit=len(last))
            await replica_a.write(upload_id, 1, body(b"x" * MIN_PART), limit=MIN_PART)
            sent = await replica_b.write(upload_id, 1, body(first), limit=MIN_PART)
            assert sent.md5 == hashlib.md5(first).hexdigest() and sent.size == MIN_PART
            with pytest.raises(PartTooLargeError):
                await replica_a.write(upload_id, 2, body(last + b"!"), limit=len(last))
            uploads = (await s3.list_multipart_uploads(Bucket=location.bucket))["Uploads"]
            assert [u["Key"] for u in uploads] == [f"p/parts/{upload_id}"]  # one S3 upload
            dest = tmp_path / "joined"
            await replica_a.join(upload_id, 2, dest)
            assert dest.read_bytes() == first + last
            await replica_b.drop(upload_id)
            assert await media.listing("p/") == []
            assert "Uploads" not in await s3.list_multipart_uploads(Bucket=location.bucket)
            with pytest.raises(FileNotFoundError):  # joined and dropped: nothing to join
                await replica_a.join(upload_id, 2, tmp_path / "again")
    finally:
        await ids.close()
