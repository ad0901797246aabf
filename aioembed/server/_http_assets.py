"""The ``/assets`` HTTP adapter: a sub-application mounted at ``/v1.3/assets``.

Its errors use the v2 body (``{"error": {"code", "message", "request_id"}}``).
The root app's middleware still does the key, the rate limit and the
rendering; this module parses, calls :class:`~._assets.AssetService` and
renders. Its resources open after the root's (sub-application start-up runs
after the root's ``cleanup_ctx``), so it reads the root's pools and session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from .._params import invalid, not_provided, unknown
from ..contract._spec import Field, FormSpec
from ..errors import APIStatusError
from ._asset_store import AssetRecord, AssetStore
from ._assets import AssetLimits, AssetService
from ._http import ERROR_BODY, PUBLIC
from ._keys import CONFIG, OWNER, SYNC_POOL, TMP_DIR, URL_POLICY, URL_SESSION
from ._media import LocalMediaStore
from ._render import json_response
from ._uploads import read_form, safe_filename
from ._urlgate import HttpUrlGate

__all__ = ["ASSETS", "PREFIX", "make_app", "page_info", "parse_page", "v2_error_response"]

PREFIX = "/v1.3/assets"
#: The asset domain, for the other adapters (v2 media sources, multipart uploads).
ASSETS = web.AppKey("assets", AssetService)
_LIMITS = web.AppKey("asset_limits", AssetLimits)

_CREATE = FormSpec(
    (
        Field("method", required=True, choices=("direct", "url")),
        Field("file", kind="file"),
        Field("url"),
        Field("filename"),
        Field("enable_hls"),
        Field("enable_thumbnail"),
        Field("user_metadata"),
    )
)
_BOOLS = ("true", "false")


def v2_error_response(exc: APIStatusError, request_id: str) -> web.Response:
    """The v2 error body with the error's status and headers."""
    body = {"error": {"code": str(exc.code), "message": exc.message, "request_id": request_id}}
    resp = json_response(body, status=exc.status)
    resp.headers.update(exc.headers)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def asset_body(rec: AssetRecord) -> dict[str, Any]:
    """An asset as create, retrieve and list show it (the detail form)."""
    body: dict[str, Any] = {
        "_id": rec.id,
        "method": rec.method,
        "status": rec.status,
        "filename": rec.filename,
        "file_type": rec.file_type,
        "created_at": rfc3339(rec.created_at),
    }
    if rec.user_metadata is not None:
        body["user_metadata"] = rec.user_metadata
    if rec.status == "ready":
        body["size"] = rec.size
        if rec.duration is not None:
            body["duration"] = rec.duration
    if rec.status != "processing" and rec.technical is not None:
        body["technical_metadata"] = rec.technical
    if rec.status == "failed":
        body["error"] = {"message": rec.error or "The asset could not be processed."}
    return body


def _check_query(request: web.Request, allowed: tuple[str, ...]) -> None:
    for key in request.query:
        if key not in allowed:
            raise unknown(key)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise invalid(name, f"{name} should be given once.")
    try:
        value = int(values[0])
    except ValueError:
        raise invalid(name, f"{name} should be an integer.") from None
    if not low <= value <= high:
        raise invalid(name, f"{name} should be between {low} and {high}.")
    return value


def parse_page(request: web.Request) -> tuple[int, int]:
    """``page`` (from 1) and ``page_limit`` (1-50, default 10)."""
    return _int(request, "page", 1, 1, 1 << 31), _int(request, "page_limit", 10, 1, 50)


def page_info(page: int, limit: int, total: int) -> dict[str, int]:
    return {
        "limit_per_page": limit,
        "page": page,
        "total_page": (total + limit - 1) // limit,
        "total_results": total,
    }


def _metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid("user_metadata", "user_metadata should be a JSON object.") from None
    if not isinstance(value, dict):
        raise invalid("user_metadata", "user_metadata should be a JSON object.")
    for key, item in value.items():
        ok = isinstance(item, (str, int, float, bool)) or (
            isinstance(item, list) and all(isinstance(x, str) for x in item)
        )
        if not ok:
            raise invalid(
                f"user_metadata.{key}"[:100], "Values should be strings, numbers, booleans or lists of strings."
            )
    return value


async def create(request: web.Request) -> web.Response:
    _check_query(request, ())
    service, config = request.config_dict[ASSETS], request.config_dict[CONFIG]
    form = await read_form(
        request,
        _CREATE,
        tmp_dir=request.config_dict[TMP_DIR],
        max_file_bytes=request.config_dict[_LIMITS].direct,
        max_field_bytes=config.max_field_bytes,
    )
    try:
        method = form.get("method")
        if method is None:
            raise not_provided("method")
        if method not in ("direct", "url"):
            raise invalid("method", "method should be direct or url.")
        for name in ("enable_hls", "enable_thumbnail"):
            flag = form.get(name)
            if flag is not None and flag not in _BOOLS:
                raise invalid(name, f"{name} should be true or false.")
        meta = _metadata(form.get("user_metadata"))
        filename = safe_filename(form.get("filename"))
        if method == "direct":
            upload = form.files.get("file")
            if upload is None:
                raise not_provided("file")
            rec = await service.create_direct(
                request[OWNER],
                upload.path,
                size=upload.size,
                filename=filename or upload.filename,
                content_type=upload.content_type,
                user_metadata=meta,
            )
        else:
            if form.files:
                raise invalid("file", "Send either a file (method=direct) or a url (method=url).")
            url = form.get("url")
            if not url:
                raise not_provided("url")
            rec = await service.create_url(
                request[OWNER], url, filename=filename, user_metadata=meta
            )
    finally:
        await form.cleanup()
    return json_response(asset_body(rec), status=201)


async def retrieve(request: web.Request) -> web.Response:
    _check_query(request, ())
    rec = await request.config_dict[ASSETS].get(request[OWNER], request.match_info["asset_id"])
    return json_response(asset_body(rec))


async def listing(request: web.Request) -> web.Response:
    _check_query(request, ("page", "page_limit", "asset_ids", "asset_types", "filename"))
    page, limit = parse_page(request)
    filenames = request.query.getall("filename", [])
    if len(filenames) > 1:
        raise invalid("filename", "filename should be given once.")
    ids = [i for v in request.query.getall("asset_ids", []) for i in v.split(",") if i]
    kinds = [k for v in request.query.getall("asset_types", []) for k in v.split(",") if k]
    recs, total = await request.config_dict[ASSETS].page(
        request[OWNER],
        ids=ids,
        kinds=kinds,
        filename=filenames[0] if filenames else None,
        page=page,
        limit=limit,
    )
    return json_response(
        {"data": [asset_body(r) for r in recs], "page_info": page_info(page, limit, total)}
    )


async def delete(request: web.Request) -> web.Response:
    _check_query(request, ("force",))
    force = request.query.getall("force", [])
    if len(force) > 1 or (force and force[0] not in _BOOLS):
        raise invalid("force", "force should be true or false.")
    await request.config_dict[ASSETS].delete(request[OWNER], request.match_info["asset_id"])
    return web.Response(status=204)


def make_app(root: web.Application, limits: AssetLimits | None = None) -> web.Application:
    """The ``/assets`` routes, relative to :data:`PREFIX`; ``root`` holds the pools it uses."""
    app = web.Application()
    app[ERROR_BODY] = v2_error_response
    app[PUBLIC] = frozenset()
    app[_LIMITS] = limits or AssetLimits()
    app.router.add_post("", create, name="assets.create")
    app.router.add_get("", listing, name="assets.list")
    app.router.add_get("/{asset_id}", retrieve, name="assets.retrieve")
    app.router.add_delete("/{asset_id}", delete, name="assets.delete")

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config = root[CONFIG]
        media_dir = config.data_dir / "assets"
        await asyncio.get_running_loop().run_in_executor(None, _mkdir, media_dir)
        store = AssetStore(config.data_dir / "assets.sqlite3")
        await store.open()
        urls = HttpUrlGate(session=lambda: root[URL_SESSION], policy=root[URL_POLICY], config=config)
        service = AssetService(
            store=store,
            media=LocalMediaStore(media_dir),
            pool=root[SYNC_POOL],
            urls=urls,
            scratch=root[TMP_DIR],
            limits=app[_LIMITS],
        )
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(store.close)
            await service.start()
            stack.push_async_callback(service.close)
            root[ASSETS] = service
            yield

    app.cleanup_ctx.append(lifecycle)
    return app


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
