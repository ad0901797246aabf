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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._params import invalid, not_provided, unknown
from ..contract._spec import Field, FormSpec
from ..contract.assets import AssetPage
from ..errors import ErrorCode, PayloadTooLargeError
from ._asset_bodies import asset_model, pages, render
from ._asset_store import AssetStore
from ._assets import AssetLimits, AssetService
from ._http import ERROR_BODY, PUBLIC
from ._http_uploads import UPLOADS, add_routes
from ._keys import (
    CONFIG,
    DISPATCHER,
    OWNER,
    PROBE_POOL,
    STORE,
    TMP_DIR,
    URL_POLICY,
    URL_SESSION,
)
from ._media import LocalMediaStore
from ._parts import LocalPartStore
from ._upload_store import UploadStore
from ._uploads import read_form, safe_filename
from ._uploads_multipart import UploadLimits, UploadService, load_secret
from ._urlgate import HttpUrlGate
from ._v2_http import mount, parse_page, v2_error_response

if TYPE_CHECKING:
    from ._operator import OperatorAssets

__all__ = ["ASSETS", "make_app"]

#: The asset domain, for the other adapters (v2 media sources, multipart uploads).
ASSETS = web.AppKey("assets", AssetService)
_LIMITS = web.AppKey("asset_limits", AssetLimits)
_UPLOAD_LIMITS = web.AppKey("upload_limits", UploadLimits)

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


def _check_query(request: web.Request, allowed: tuple[str, ...]) -> None:
    for key in request.query:
        if key not in allowed:
            raise unknown(key)


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
                f"user_metadata.{key}"[:100],
                "Values should be strings, numbers, booleans or lists of strings.",
            )
    return value


async def create(request: web.Request) -> web.Response:
    _check_query(request, ())
    service, config = request.config_dict[ASSETS], request.config_dict[CONFIG]
    limit = request.config_dict[_LIMITS].direct
    try:
        form = await read_form(
            request,
            _CREATE,
            tmp_dir=request.config_dict[TMP_DIR],
            max_file_bytes=limit,
            max_field_bytes=config.max_field_bytes,
        )
    except PayloadTooLargeError:  # the v1 form reader's code; assets speak v2's
        raise PayloadTooLargeError(
            f"File size exceeds maximum limit of {limit / (1 << 20):g} MB.",
            code=ErrorCode.CONTENT_TOO_LARGE,
        ) from None
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
    return render(asset_model(rec), status=201)


async def retrieve(request: web.Request) -> web.Response:
    _check_query(request, ())
    rec = await request.config_dict[ASSETS].get(request[OWNER], request.match_info["asset_id"])
    return render(asset_model(rec))


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
    return render(AssetPage([asset_model(r) for r in recs], pages(page, limit, total)))


async def delete(request: web.Request) -> web.Response:
    _check_query(request, ("force",))
    force = request.query.getall("force", [])
    if len(force) > 1 or (force and force[0] not in _BOOLS):
        raise invalid("force", "force should be true or false.")
    await request.config_dict[ASSETS].delete(request[OWNER], request.match_info["asset_id"])
    return web.Response(status=204)


def make_app(root: web.Application) -> web.Application:
    """The ``/assets`` routes, relative to :data:`PREFIX`; ``root`` holds the configuration
    (limits included) and the pools it uses."""
    app = web.Application()
    app[ERROR_BODY] = v2_error_response
    app[_LIMITS] = AssetLimits.from_config(root[CONFIG])
    app[_UPLOAD_LIMITS] = UploadLimits.from_config(root[CONFIG])
    handlers = {
        "assets.create": create,
        "assets.list": listing,
        "assets.retrieve": retrieve,
        "assets.delete": delete,
    }
    app[PUBLIC] = add_routes(app) | mount(app, handlers)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        config = root[CONFIG]
        urls = HttpUrlGate(
            session=lambda: root[URL_SESSION], policy=root[URL_POLICY], config=config
        )
        async with contextlib.AsyncExitStack() as stack:
            shared = None
            if config.operator_mode:  # shared by every replica (PostgreSQL + the bucket)
                from ._operator import OperatorAssets

                shared = await OperatorAssets.open(config, root[TMP_DIR], stack)
                store: Any = shared.store
                media: Any = shared.media
            else:
                media_dir = config.data_dir / "assets"
                await asyncio.get_running_loop().run_in_executor(None, _mkdir, media_dir)
                store = AssetStore(config.data_dir / "assets.sqlite3")
                await store.open()
                stack.push_async_callback(store.close)
                media = LocalMediaStore(media_dir)
            service = AssetService(
                store=store,
                media=media,
                pool=root[PROBE_POOL],
                urls=urls,
                scratch=root[TMP_DIR],
                limits=app[_LIMITS],
                tasks=root[STORE],
            )
            await service.start()
            stack.push_async_callback(service.close)
            root[ASSETS] = service
            root[DISPATCHER].use_assets(service)  # v2 tasks with an asset_id source
            uploads = await _uploads(root, service, app[_UPLOAD_LIMITS], stack, shared)
            root[UPLOADS] = uploads
            sweeper = asyncio.get_running_loop().create_task(uploads.run_sweeper())
            stack.callback(sweeper.cancel)
            yield

    app.cleanup_ctx.append(lifecycle)
    # The root closes its pools and URL session before sub-applications clean up:
    # stop the background fetches, probes and joins first (shutdown runs earlier).
    root.on_shutdown.append(_stop_jobs)
    return app


async def _stop_jobs(root: web.Application) -> None:
    if UPLOADS in root:
        await root[UPLOADS].close()
    if ASSETS in root:
        await root[ASSETS].close()


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)


async def _uploads(
    root: web.Application,
    assets: AssetService,
    limits: UploadLimits,
    stack: contextlib.AsyncExitStack,
    shared: OperatorAssets | None = None,
) -> UploadService:
    """The multipart-upload service over ``uploads.sqlite3``, ``parts/`` and the secret
    (in operator mode: PostgreSQL, the bucket and the secret every replica shares)."""
    store: Any
    parts: Any
    if shared is not None:
        store, parts, secret = shared.uploads, shared.parts, shared.secret
    else:
        data_dir = root[CONFIG].data_dir
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _mkdir, data_dir / "parts")
        secret = await loop.run_in_executor(None, load_secret, data_dir / "upload-secret")
        store = UploadStore(data_dir / "uploads.sqlite3")
        await store.open()
        stack.push_async_callback(store.close)
        parts = LocalPartStore(data_dir / "parts")
    service = UploadService(
        store=store,
        parts=parts,
        assets=assets,
        secret=secret,
        scratch=root[TMP_DIR],
        limits=limits,
    )
    await service.start()
    stack.push_async_callback(service.close)
    return service
