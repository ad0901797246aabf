"""The S3 media store's own rules, beyond the MediaStore conformance suite (moto on loopback)."""

from __future__ import annotations

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
