"""Assets and multipart uploads (``/v1.3/assets``): the routes both ends share.

Paths are relative to :data:`PREFIX`; ``response`` names the model of each
answer (:mod:`._models`). The OpenAPI document shows v1 only.
"""

from __future__ import annotations

from .._spec import ApiVersion, Operation
from ..v1.operations import PREFIX as V1_PREFIX
from ._models import (
    Asset,
    AssetPage,
    PartUrls,
    ReportResult,
    UploadCreated,
    UploadDetail,
    UploadPage,
)

__all__ = ["API", "PREFIX"]

PREFIX = V1_PREFIX + "/assets"

_UPLOADS = "/multipart-uploads"
_UPLOAD = _UPLOADS + "/{upload_id}"

API = ApiVersion(
    prefix=PREFIX,
    title="TwelveLabs assets and multipart uploads",
    description="Assets (direct and URL uploads) and chunked multipart uploads up to 10 GB.",
    operations=(
        Operation("assets.create", "createAsset", "POST", "", "Create", Asset, upload=True),
        Operation("assets.list", "listAssets", "GET", "", "List, newest first", AssetPage),
        Operation("assets.retrieve", "retrieveAsset", "GET", "/{asset_id}", "An asset", Asset),
        Operation("assets.delete", "deleteAsset", "DELETE", "/{asset_id}", "Delete an asset"),
        Operation(
            "uploads.create", "createAssetUpload", "POST", _UPLOADS, "Start", UploadCreated
        ),
        Operation(
            "uploads.list", "listIncompleteUploads", "GET", _UPLOADS, "Incomplete", UploadPage
        ),
        Operation(
            "uploads.status", "getUploadStatus", "GET", _UPLOAD, "An upload's chunks", UploadDetail
        ),
        Operation(
            "uploads.report", "reportChunkBatch", "POST", _UPLOAD, "Report chunks", ReportResult
        ),
        Operation(
            "uploads.urls",
            "getAdditionalPresignedUrls",
            "POST",
            _UPLOAD + "/presigned-urls",
            "More part URLs",
            PartUrls,
        ),
        Operation(
            "uploads.put_chunk",
            "putChunk",
            "PUT",
            _UPLOAD + "/chunks/{index}",
            "A chunk's bytes, on its signed URL",
            public=True,
        ),
    ),
)
