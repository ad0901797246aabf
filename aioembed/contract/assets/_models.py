"""Asset and multipart-upload bodies as frozen attrs classes, and the converter both ends use.

The server renders every ``/assets`` and ``/assets/multipart-uploads`` answer
by unstructuring these models; the SDK parses the same answers with the same
converter (:func:`converter`) and sends its JSON requests from the request
models at the bottom. Wire contract: ``embed-api-v2.md`` (assets, multipart
uploads). Optional fields default to ``None`` and are left out when rendered
(``error`` only on a ``failed`` asset, ``url`` only on a completing report),
except a chunk's times and error, which the contract shows as ``null``.
Unknown keys are tolerated, so a newer server never breaks an older client.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import attrs
import cattrs

from ...models import PageInfo
from .._convert import configure_converter as configure_common
from .._convert import register_renamed

__all__ = [
    "Asset",
    "AssetError",
    "AssetPage",
    "AssetStatus",
    "ChunkDetail",
    "ChunkReport",
    "ChunkStatus",
    "PartUrl",
    "PartUrls",
    "PartUrlsRequest",
    "Report",
    "ReportResult",
    "UploadCreate",
    "UploadCreated",
    "UploadDetail",
    "UploadPage",
    "UploadStatus",
    "UploadSummary",
    "configure_converter",
    "converter",
    "make_converter",
    "structure",
    "unstructure",
]

T = TypeVar("T")


class AssetStatus(StrEnum):
    """``processing`` (also: an upload in flight) → ``ready`` | ``failed``."""

    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class UploadStatus(StrEnum):
    """A multipart session: ``active`` until every chunk is reported, or ``expired``."""

    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


class ChunkStatus(StrEnum):
    """``completed`` = uploaded and reported; ``pending`` = not yet reported."""

    COMPLETED = "completed"
    PENDING = "pending"
    FAILED = "failed"


# -- /assets --------------------------------------------------------------------------


@attrs.frozen
class AssetError:
    message: str


@attrs.frozen(kw_only=True)
class Asset:
    """An asset as create, retrieve and list show it. ``size``/``duration`` from ``ready``
    on; ``technical_metadata`` once probed; ``error`` only when ``failed``."""

    id: str
    status: AssetStatus
    method: str | None = None
    filename: str | None = None
    file_type: str | None = None
    created_at: datetime | None = None
    user_metadata: dict[str, Any] | None = None
    size: int | None = None
    duration: float | None = None
    technical_metadata: dict[str, Any] | None = None
    error: AssetError | None = None


@attrs.frozen
class AssetPage:
    data: list[Asset]
    page_info: PageInfo


# -- /assets/multipart-uploads ----------------------------------------------------------


@attrs.frozen
class PartUrl:
    """Where chunk ``chunk_index`` (1-based) goes, until ``expires_at``."""

    chunk_index: int
    url: str
    expires_at: datetime


@attrs.frozen(kw_only=True)
class UploadCreated:
    """``POST /assets/multipart-uploads``: the session, its asset and the first part URLs."""

    upload_id: str
    asset_id: str
    upload_urls: list[PartUrl]
    upload_headers: dict[str, str]
    chunk_size: int
    total_chunks: int
    expires_at: datetime


@attrs.frozen(kw_only=True)
class PartUrls:
    """``POST …/{upload_id}/presigned-urls``."""

    upload_id: str
    start_index: int
    count: int
    upload_urls: list[PartUrl]
    generated_at: datetime
    expires_at: datetime


@attrs.frozen(kw_only=True)
class ReportResult:
    """``POST …/{upload_id}``: ``url`` (the asset's) once every chunk is reported."""

    asset_id: str
    processed_chunks: int
    duplicate_chunks: int
    total_completed: int
    url: str | None = None


@attrs.frozen
class ChunkDetail:
    index: int
    status: ChunkStatus
    uploaded_at: datetime | None = None
    updated_at: datetime | None = None
    error: str | None = None


@attrs.frozen(kw_only=True)
class UploadDetail:
    """``GET …/{upload_id}``: the session and a page of its chunks."""

    upload_id: str
    status: UploadStatus
    uploaded_chunks: list[ChunkDetail]
    chunks_completed: int
    chunks_failed: int
    chunks_pending: int
    total_size: int
    uploaded_size: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    page_info: PageInfo | None = None


@attrs.frozen(kw_only=True)
class UploadSummary:
    """An item of ``GET /assets/multipart-uploads`` (sessions not completed)."""

    upload_id: str
    status: UploadStatus
    total_size: int
    chunk_size: int
    total_chunks: int
    created_at: datetime | None = None
    expires_at: datetime | None = None


@attrs.frozen
class UploadPage:
    data: list[UploadSummary]
    page_info: PageInfo


# -- request bodies (JSON) ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UploadCreate:
    filename: str
    type: str
    total_size: int
    user_metadata: dict[str, Any] | None = None


@attrs.frozen
class PartUrlsRequest:
    start: int
    count: int


@attrs.frozen(kw_only=True)
class ChunkReport:
    """One uploaded chunk: ``proof`` is its ETag (the MD5 hex of its bytes)."""

    chunk_index: int
    proof: str
    chunk_size: int
    proof_type: str = "etag"


@attrs.frozen
class Report:
    completed_chunks: list[ChunkReport]


# -- the converter ----------------------------------------------------------------------

#: The order the server writes an asset's keys in (the contract's).
_ASSET_KEYS = (
    "_id",
    "method",
    "status",
    "filename",
    "file_type",
    "created_at",
    "user_metadata",
    "size",
    "duration",
    "technical_metadata",
    "error",
)


def configure_converter(conv: cattrs.Converter) -> None:
    """Add the asset and upload hooks to ``conv``.

    Leaves first: a generated hook binds the hooks of the models it nests when it is made.
    """
    configure_common(conv)
    for enum in (AssetStatus, UploadStatus, ChunkStatus):
        conv.register_unstructure_hook(enum, lambda v: v.value)
    # Written whole: a chunk's times and error are null in the contract, and
    # ``proof_type`` is required although it has a default (omitting drops defaults).
    register_renamed(conv, ChunkDetail)
    register_renamed(conv, ChunkReport)
    leaves: tuple[type, ...] = (AssetError, PageInfo, PartUrl, UploadCreate)
    for leaf in leaves:
        register_renamed(conv, leaf, omit_none=True)
    register_renamed(conv, Asset, omit_none=True, order=_ASSET_KEYS, renames={"id": "_id"})
    for cls in (
        AssetPage,
        UploadCreated,
        PartUrls,
        ReportResult,
        UploadDetail,
        UploadSummary,
        UploadPage,
        PartUrlsRequest,
        Report,
    ):
        register_renamed(conv, cls, omit_none=True)


def make_converter() -> cattrs.Converter:
    """A new converter speaking the asset and upload bodies."""
    conv = cattrs.Converter(omit_if_default=False)
    configure_converter(conv)
    return conv


_CONVERTER = make_converter()


def converter() -> cattrs.Converter:
    """The shared instance of :func:`make_converter`."""
    return _CONVERTER


def structure(data: Any, cls: type[T]) -> T:
    """Wire JSON (already parsed) -> model; raises ``cattrs`` errors on a bad shape."""
    return _CONVERTER.structure(data, cls)


def unstructure(obj: Any) -> Any:
    """Model -> JSON-ready data."""
    return _CONVERTER.unstructure(obj)
