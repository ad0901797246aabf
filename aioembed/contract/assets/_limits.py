"""The contract's asset and multipart-upload limits: the defaults both ends start from.

The server may be configured tighter or looser (``ServerConfig.asset_*`` and
``upload_*``, ``aioembed serve --help``); the SDK uses :data:`DIRECT_MAX_BYTES`
to choose between a direct and a multipart upload.
"""

from __future__ import annotations

__all__ = [
    "CHUNK_SIZE",
    "DIRECT_MAX_BYTES",
    "IMAGE_MAX_BYTES",
    "MAX_CHUNKS",
    "MULTIPART_MAX_BYTES",
    "SESSION_TTL",
    "URLS_PER_REQUEST",
    "URL_MAX_BYTES",
    "URL_TTL",
]

_MB = 1 << 20
_GB = 1 << 30

#: ``POST /assets`` with ``method=direct``: video, audio and documents.
DIRECT_MAX_BYTES = 200 * _MB
#: ``POST /assets`` with ``method=url``.
URL_MAX_BYTES = 4 * _GB
#: Images, however they arrive.
IMAGE_MAX_BYTES = 32 * _MB
#: ``total_size`` of a multipart upload (video, audio).
MULTIPART_MAX_BYTES = 10 * _GB
#: The default chunk size; grown for big files so ``total_chunks`` stays at most :data:`MAX_CHUNKS`.
CHUNK_SIZE = 5 * _MB
MAX_CHUNKS = 10_000
#: Seconds a presigned part URL is valid after issue.
URL_TTL = 3600.0
#: Seconds an upload session is valid after create.
SESSION_TTL = 86400.0
#: Part URLs at most per create or ``presigned-urls`` answer.
URLS_PER_REQUEST = 50
