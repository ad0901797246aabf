"""``/assets/multipart-uploads`` routes, added to the ``/assets`` sub-application.

JSON bodies are checked in the contract's precedence (not JSON, unknown key,
missing key, bad value); the part PUT is public (its signature is the
credential: the official wrapper sends no key) and streams to the part store.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .._params import invalid, not_provided, unknown
from ..errors import ParameterError
from ..contract.assets import (
    PartUrl,
    PartUrls,
    ReportResult,
    UploadCreated,
    UploadDetail,
    UploadPage,
    UploadStatus,
)
from ._asset_bodies import chunk_model, moment, pages, part_urls, render, summary_model
from ._keys import OWNER
from ._upload_store import UploadRecord
from ._uploads import safe_filename
from ._uploads_multipart import UploadService
from ._v2_http import PREFIX, mount, parse_page

__all__ = ["UPLOADS", "add_routes"]

UPLOADS = web.AppKey("uploads", UploadService)
_PUT_CHUNK = "uploads.put_chunk"


async def _json(request: web.Request, allowed: dict[str, bool]) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise invalid("body", "The request body should be JSON.") from None
    if not isinstance(body, dict):
        raise invalid("body", "The request body should be a JSON object.")
    for key in body:
        if key not in allowed:
            raise unknown(key)
    for key, required in allowed.items():
        if required and body.get(key) is None:
            raise not_provided(key)
    return body


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise invalid(name, f"{name} should be an integer.")
    if not low <= int(value) <= high:
        raise invalid(name, f"{name} should be between {low} and {high}.")
    return int(value)


def _base(request: web.Request) -> str:
    return f"{request.url.origin()}{PREFIX}"


def _urls(
    service: UploadService, rec: UploadRecord, base: str, start: int, count: int
) -> tuple[list[PartUrl], float]:
    urls, expires = service.urls(rec, base, start, count)
    return part_urls(urls, expires), expires


async def create(request: web.Request) -> web.Response:
    service = request.config_dict[UPLOADS]
    body = await _json(
        request,
        {
            "filename": True,
            "type": True,
            "total_size": True,
            "enable_hls": False,
            "enable_thumbnail": False,
            "user_metadata": False,
        },
    )
    filename = body["filename"]
    if not isinstance(filename, str) or safe_filename(filename) is None:
        raise invalid("filename", "filename should be a file name.")
    kind = body["type"]
    if kind not in ("video", "audio", "image"):
        raise invalid("type", "type should be video, audio or image.")
    total = _integer(body, "total_size", 1, 1 << 50)
    meta = body.get("user_metadata")
    if meta is not None and not isinstance(meta, dict):
        raise invalid("user_metadata", "user_metadata should be an object.")
    rec = await service.create(
        request[OWNER],
        filename=safe_filename(filename) or filename,
        kind=kind,
        total_size=total,
        user_metadata=meta,
    )
    urls, _ = _urls(service, rec, _base(request), 1, service.limits.urls_per_request)
    created = UploadCreated(
        upload_id=rec.id,
        asset_id=rec.asset_id,
        upload_urls=urls,
        upload_headers={},
        chunk_size=rec.chunk_size,
        total_chunks=rec.total_chunks,
        expires_at=moment(rec.expires_at),
    )
    return render(created, status=201)


async def presigned_urls(request: web.Request) -> web.Response:
    service = request.config_dict[UPLOADS]
    rec = await service.active(request[OWNER], request.match_info["upload_id"])
    body = await _json(request, {"start": True, "count": True})
    start = _integer(body, "start", 1, rec.total_chunks)
    count = _integer(body, "count", 1, service.limits.urls_per_request)
    if start + count - 1 > rec.total_chunks:
        raise invalid("count", f"start + count - 1 should be at most {rec.total_chunks}.")
    urls, expires = _urls(service, rec, _base(request), start, count)
    answer = PartUrls(
        upload_id=rec.id,
        start_index=start,
        count=count,
        upload_urls=urls,
        generated_at=moment(time.time()),
        expires_at=moment(expires),
    )
    return render(answer)


async def report(request: web.Request) -> web.Response:
    service = request.config_dict[UPLOADS]
    rec = await service.active(request[OWNER], request.match_info["upload_id"])
    body = await _json(request, {"completed_chunks": True})
    items = body["completed_chunks"]
    if not isinstance(items, list) or not items:
        raise invalid("completed_chunks", "completed_chunks should be a non-empty list.")
    parsed: list[tuple[int, str, int]] = []
    fields = {"chunk_index": True, "proof": True, "proof_type": True, "chunk_size": True}
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"completed_chunks[{n}]", "Each entry should be an object.")
        for key in item:
            if key not in fields:
                raise unknown(f"completed_chunks[{n}].{key}")
        for key in fields:
            if item.get(key) is None:
                raise not_provided(f"completed_chunks[{n}].{key}")
        if item["proof_type"] != "etag" or not isinstance(item["proof"], str):
            raise invalid(
                f"completed_chunks[{n}]", "proof should be the chunk's ETag (proof_type etag)."
            )
        parsed.append(
            (
                _integer(item, "chunk_index", 1, rec.total_chunks),
                item["proof"],
                _integer(item, "chunk_size", 0, rec.chunk_size),
            )
        )
    result = await service.report(rec, parsed)
    url = f"{request.url.origin()}{PREFIX}/{rec.asset_id}" if result.complete else None
    return render(
        ReportResult(
            asset_id=rec.asset_id,
            processed_chunks=result.processed,
            duplicate_chunks=result.duplicates,
            total_completed=result.total_completed,
            url=url,
        )
    )


def _page(request: web.Request) -> tuple[int, int]:
    for key in request.query:
        if key not in ("page", "page_limit"):
            raise unknown(key)
    return parse_page(request)


async def status(request: web.Request) -> web.Response:
    page, limit = _page(request)
    service = request.config_dict[UPLOADS]
    rec = await service.get(request[OWNER], request.match_info["upload_id"])
    chunks = await service.chunk_states(rec)
    first = (page - 1) * limit + 1
    shown = [
        chunk_model(i, chunks.get(i))
        for i in range(first, min(first + limit, rec.total_chunks + 1))
    ]
    done = [c for c in chunks.values() if c.status == "completed"]
    failed = sum(1 for c in chunks.values() if c.status == "failed")
    detail = UploadDetail(
        upload_id=rec.id,
        status=UploadStatus(rec.status),
        uploaded_chunks=shown,
        chunks_completed=len(done),
        chunks_failed=failed,
        chunks_pending=rec.total_chunks - len(done) - failed,
        total_size=rec.total_size,
        uploaded_size=sum(c.size or 0 for c in done),
        created_at=moment(rec.created_at),
        updated_at=moment(rec.updated_at),
        page_info=pages(page, limit, rec.total_chunks),
    )
    return render(detail)


async def incomplete(request: web.Request) -> web.Response:
    page, limit = _page(request)
    recs, total = await request.config_dict[UPLOADS].page(request[OWNER], page, limit)
    return render(UploadPage([summary_model(r) for r in recs], pages(page, limit, total)))


async def put_chunk(request: web.Request) -> web.Response:
    for key in request.query:
        if key not in ("expires", "signature"):
            raise unknown(key)
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise ParameterError("The chunk index should be an integer.") from None
    etag = await request.config_dict[UPLOADS].put_part(
        request.match_info["upload_id"],
        index,
        expires=request.query.get("expires", ""),
        signature=request.query.get("signature", ""),
        length=request.content_length,
        body=request.content.iter_chunked(1 << 20),
    )
    return web.Response(status=200, headers={"ETag": f'"{etag}"'})


def add_routes(app: web.Application) -> frozenset[str]:
    """The upload routes from the contract's table; returns the names answered without a key."""
    handlers = {
        "uploads.create": create,
        "uploads.list": incomplete,
        "uploads.status": status,
        "uploads.report": report,
        "uploads.urls": presigned_urls,
        _PUT_CHUNK: put_chunk,
    }
    return mount(app, handlers)
