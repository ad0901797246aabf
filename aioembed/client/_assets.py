"""``client.assets``: create (file or URL), retrieve, list, delete, wait until ready, upload.

:meth:`Assets.upload` picks a direct upload (up to ``direct_limit``) or a
resumable multipart upload (:mod:`._multipart`) and returns the asset once it
is ``ready``; a ``failed`` asset raises :class:`AssetFailedError`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from .._retry import Backoff
from ..contract.assets import DIRECT_MAX_BYTES, Asset, AssetPage, AssetStatus, structure
from ..errors import AioEmbedError, WaitTimeoutError
from ._multipart import upload_multipart
from ._paging import walk_pages
from ._transport import Transport
from ._upload import FileInput, ProgressCallback, as_source

__all__ = ["Asset", "AssetFailedError", "Assets"]



class AssetFailedError(AioEmbedError):
    """The asset ended ``failed``; ``message`` is the server's reason."""

    def __init__(self, asset_id: str, message: str | None) -> None:
        super().__init__(f"asset {asset_id} failed: {message or 'no reason given'}")
        self.asset_id = asset_id
        self.message = message


def _path(asset_id: str) -> str:
    if not isinstance(asset_id, str) or not asset_id:
        raise ValueError("asset_id must be a non-empty string")
    return f"assets/{quote(asset_id, safe='')}"


class Assets:
    """``/assets`` calls."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def create(
        self,
        *,
        file: FileInput | None = None,
        url: str | None = None,
        filename: str | None = None,
        user_metadata: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> Asset:
        """A direct (``file``) or URL asset; answers ``processing`` at once."""
        if (file is None) == (url is None):
            raise ValueError("give exactly one of file or url")
        fields = [("method", "direct" if file is not None else "url")]
        if url is not None:
            fields.append(("url", url))
        if filename is not None:
            fields.append(("filename", filename))
        if user_metadata is not None:
            fields.append(("user_metadata", json.dumps(user_metadata)))
        source = None
        if file is not None:
            source = as_source(file, name=filename or "file", max_bytes=DIRECT_MAX_BYTES)
        return await self._transport.post_form(
            "assets",
            fields,
            _parse_asset,
            file_field="file" if source is not None else None,
            source=source,
            progress=progress,
            idempotent=False,
        )

    async def retrieve(self, asset_id: str) -> Asset:
        return await self._transport.request("GET", _path(asset_id), _parse_asset)

    async def delete(self, asset_id: str) -> None:
        await self._transport.request("DELETE", _path(asset_id), lambda _: None)

    async def list(
        self,
        *,
        asset_ids: Sequence[str] = (),
        asset_types: Sequence[str] = (),
        filename: str | None = None,
        page_limit: int = 50,
    ) -> AsyncIterator[Asset]:
        """Every matching asset, newest first, a page at a time."""

        async def fetch(page: int) -> AssetPage:
            params = [("page", str(page)), ("page_limit", str(page_limit))]
            params += [("asset_ids", i) for i in asset_ids]
            params += [("asset_types", t) for t in asset_types]
            if filename is not None:
                params.append(("filename", filename))
            return await self._transport.request("GET", "assets", _parse_page, params=params)

        async for item in walk_pages(fetch):
            yield item

    async def wait_for_ready(
        self,
        asset_id: str,
        *,
        sleep_interval: float = 0.5,
        max_interval: float = 5.0,
        timeout: float | None = None,
    ) -> AsyncGenerator[Asset, None]:
        """Yield the asset on every poll until ``ready`` (last item); ``failed`` raises
        :class:`AssetFailedError`, the deadline :class:`~aioembed.WaitTimeoutError`."""
        backoff = Backoff(initial=sleep_interval, maximum=max_interval, factor=1.5, jitter=0.1)
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            asset = await self.retrieve(asset_id)
            yield asset
            if asset.status is AssetStatus.READY:
                return
            if asset.status is AssetStatus.FAILED:
                raise AssetFailedError(asset_id, asset.error.message if asset.error else None)
            attempt += 1
            delay = backoff.base(attempt)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WaitTimeoutError(asset_id, timeout or 0.0)
            await anyio.sleep(delay)

    async def ready(self, asset_id: str, *, timeout: float | None = None) -> Asset:
        """The asset once ``ready`` (see :meth:`wait_for_ready`)."""
        last: Asset | None = None
        async for last in self.wait_for_ready(asset_id, timeout=timeout):
            pass
        assert last is not None
        return last

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        file_type: str = "video",
        user_metadata: dict[str, Any] | None = None,
        direct_limit: int = DIRECT_MAX_BYTES,
        part_concurrency: int = 4,
        progress: ProgressCallback | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> Asset:
        """Upload a local file and return it ``ready``: direct up to ``direct_limit``
        bytes, else multipart, resumable (see :func:`~._multipart.upload_multipart`)."""
        source = Path(path)
        size = source.stat().st_size
        if size <= direct_limit:
            created = await self.create(
                file=source, filename=filename, user_metadata=user_metadata, progress=progress
            )
            asset_id = created.id
        else:
            asset_id = await upload_multipart(
                self._transport,
                source,
                filename=filename or source.name,
                file_type=file_type,
                user_metadata=user_metadata,
                part_concurrency=part_concurrency,
                progress=progress,
                state_dir=Path(state_dir) if state_dir is not None else None,
            )
        return await self.ready(asset_id, timeout=timeout)


def _parse_asset(data: Any) -> Asset:
    return structure(data, Asset)


def _parse_page(data: Any) -> AssetPage:
    return structure(data, AssetPage)
