"""Assets and multipart uploads (``/v1.3/assets``): the routes both ends share.

Paths are relative to :data:`PREFIX`. The bodies are still rendered by the server's
asset modules and parsed by ``client/_assets.py``; their models are not yet in the
contract (the OpenAPI document shows v1 only).
"""

from __future__ import annotations

from ._spec import ApiVersion, Operation
from .v1.operations import PREFIX as V1_PREFIX

__all__ = ["API", "PREFIX"]

PREFIX = V1_PREFIX + "/assets"

_UPLOADS = "/multipart-uploads"
_UPLOAD = _UPLOADS + "/{upload_id}"

API = ApiVersion(
    prefix=PREFIX,
    title="TwelveLabs assets and multipart uploads",
    description="Assets (direct and URL uploads) and chunked multipart uploads up to 10 GB.",
    operations=(
        Operation("assets.create", "createAsset", "POST", "", "Create an asset", upload=True),
        Operation("assets.list", "listAssets", "GET", "", "List assets, newest first"),
        Operation("assets.retrieve", "retrieveAsset", "GET", "/{asset_id}", "An asset"),
        Operation("assets.delete", "deleteAsset", "DELETE", "/{asset_id}", "Delete an asset"),
        Operation("uploads.create", "createAssetUpload", "POST", _UPLOADS, "Start an upload"),
        Operation("uploads.list", "listIncompleteUploads", "GET", _UPLOADS, "Incomplete uploads"),
        Operation("uploads.status", "getUploadStatus", "GET", _UPLOAD, "An upload's chunks"),
        Operation("uploads.report", "reportChunkBatch", "POST", _UPLOAD, "Report chunks"),
        Operation(
            "uploads.urls",
            "getAdditionalPresignedUrls",
            "POST",
            _UPLOAD + "/presigned-urls",
            "More part URLs",
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
