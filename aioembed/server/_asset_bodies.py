"""The server's asset and upload records as the asset contract's models, and their rendering.

One place decides what a body shows (an asset's ``size`` only once ``ready``,
a chunk reported ``pending`` until its report); the models and the converter
are the SDK's own (:mod:`aioembed.contract.assets`), so both ends agree on
every body by construction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from ..contract import assets as contract
from ..contract.assets import (
    Asset,
    AssetError,
    AssetStatus,
    ChunkDetail,
    ChunkStatus,
    PartUrl,
    UploadStatus,
    UploadSummary,
)
from ..models import PageInfo
from ._asset_store import AssetRecord
from ._render import json_response
from ._upload_store import ChunkRecord, UploadRecord
from ._v2_http import page_info

__all__ = ["asset_model", "chunk_model", "moment", "pages", "part_urls", "render", "summary_model"]


def moment(epoch: float) -> datetime:
    """A stored time (epoch seconds) as the models hold it; rendered RFC 3339, seconds."""
    return datetime.fromtimestamp(epoch, tz=UTC)


def pages(page: int, limit: int, total: int) -> PageInfo:
    return PageInfo(**page_info(page, limit, total))


def render(model: object, status: int = 200) -> web.Response:
    """A body of the asset contract, rendered with its converter."""
    return json_response(contract.unstructure(model), status=status)


def asset_model(rec: AssetRecord) -> Asset:
    """An asset as create, retrieve and list show it (the detail form): ``size`` and
    ``duration`` from ``ready`` on, ``technical_metadata`` once probed, ``error`` only
    when ``failed``."""
    status = AssetStatus(rec.status)
    ready, failed = status is AssetStatus.READY, status is AssetStatus.FAILED
    return Asset(
        id=rec.id,
        method=rec.method,
        status=status,
        filename=rec.filename,
        file_type=rec.file_type,
        created_at=moment(rec.created_at),
        user_metadata=rec.user_metadata,
        size=rec.size if ready else None,
        duration=rec.duration if ready else None,
        technical_metadata=None if status is AssetStatus.PROCESSING else rec.technical,
        error=AssetError(rec.error or "The asset could not be processed.") if failed else None,
    )


def part_urls(urls: list[tuple[int, str]], expires: float) -> list[PartUrl]:
    at = moment(expires)
    return [PartUrl(index, url, at) for index, url in urls]


def chunk_model(index: int, chunk: ChunkRecord | None) -> ChunkDetail:
    """Chunk ``index`` as the status page shows it: uploaded but not reported is ``pending``."""
    if chunk is None or chunk.status == "uploaded":
        status = ChunkStatus.PENDING
    else:
        status = ChunkStatus(chunk.status)
    return ChunkDetail(
        index,
        status,
        uploaded_at=moment(chunk.uploaded_at) if chunk and chunk.uploaded_at else None,
        updated_at=moment(chunk.updated_at) if chunk else None,
        error=chunk.error if chunk and status is ChunkStatus.FAILED else None,
    )


def summary_model(rec: UploadRecord) -> UploadSummary:
    return UploadSummary(
        upload_id=rec.id,
        status=UploadStatus(rec.status),
        total_size=rec.total_size,
        chunk_size=rec.chunk_size,
        total_chunks=rec.total_chunks,
        created_at=moment(rec.created_at),
        expires_at=moment(rec.expires_at),
    )
