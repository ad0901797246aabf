"""The HTTP handlers, on one ``RouteTableDef``; methods and paths from the v1 contract table.

Handlers raise :mod:`aioembed.errors` exceptions; the app's one middleware
turns them into the contract's JSON. Checks run in the contract's precedence:
``parameter_unknown``, ``parameter_not_provided``, ``parameter_invalid``, then
``resource_not_exist`` (the key and the route were checked by the middleware).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import HttpVersion11, web

from .. import __version__
from .._params import EMBED_INPUTS, MODELS, check_embed_input, invalid, parse_number, unknown
from ..contract import v1
from ..contract._spec import FormSpec
from ..contract.v1.forms import read_audio_offset, read_task_params
from ..errors import (
    APIStatusError,
    AuthenticationError,
    ErrorCode,
)
from ._keys import (
    CONFIG,
    DISPATCHER,
    METRICS,
    OWNER,
    OWNERS,
    RATE_LIMITER,
    SERVICE,
    STARTED,
    STORE,
    SYNC_POOL,
    TMP_DIR,
)
from ._openapi import openapi_document
from ._render import (
    error_response,
    json_response,
    model_response,
    new_request_id,
    task_model,
)
from ._service import TaskView
from ._uploads import FORM_SLACK, BeforeFile, Form, read_form, too_large

__all__ = ["PREFIX", "PUBLIC_ROUTES", "routes"]

PREFIX = v1.PREFIX
#: Route names answered without an API key.
PUBLIC_ROUTES = frozenset({"health", *(op.name for op in v1.API.operations if op.public)})

routes = web.RouteTableDef()

_ID = re.compile(r"[0-9a-f]{24}")
_ALL_OPTIONS = tuple(dict.fromkeys(o for m in MODELS.values() for o in m.video_options))

_Handler = Callable[[web.Request], Any]


def _operation(name: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for the contract operation ``name`` (its method and path)."""
    op = v1.API.operation(name)
    extra = {"expect_handler": expect_continue} if op.upload else {}
    return routes.route(op.method, PREFIX + op.path, name=name, **extra)


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` (curl sends it for uploads over 1 MB): answer a bad key or
    an oversized ``Content-Length`` *before* the client sends the body.

    aiohttp runs this before the middleware, so it renders and counts its own refusals.
    """
    app = request.app
    err: APIStatusError | None = None
    if request.headers.get("Expect", "").lower() != "100-continue":
        err = APIStatusError(
            "The Expect header is invalid. Only 100-continue is supported.",
            code=ErrorCode.PARAMETER_INVALID,
            status=417,
        )
    elif app[OWNERS].get(request.headers.get("x-api-key", "")) is None:
        err = AuthenticationError(
            "The API key is missing or invalid; send a valid key in the x-api-key header.",
            code=ErrorCode.API_KEY_INVALID,
        )
    elif (request.content_length or 0) > app[CONFIG].max_upload_bytes + FORM_SLACK:
        err = too_large(app[CONFIG].max_upload_bytes, "request body")
    if err is None:
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    request_id = new_request_id()
    resp = error_response(err, request_id)
    resp.headers["x-request-id"] = request_id
    resp.force_close()
    route = request.match_info.route.resource
    app[METRICS].record(route.canonical if route else "", request.method, err.status)
    return resp


def _check_query(request: web.Request, name: str) -> None:
    allowed = v1.API.operation(name).query
    for key in request.query:
        if key not in allowed:
            raise unknown(key)


def _poll_headers(request: web.Request) -> dict[str, str]:
    return {"x-poll-after": f"{request.app[CONFIG].poll_hint:g}"}


# -- create ---------------------------------------------------------------------------


_REPLAYED = {"Idempotent-Replayed": "true"}


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid("Idempotency-Key", "Idempotency-Key should be 1-255 printable characters.")
    return key


@_operation("create_task")
async def create_task(request: web.Request) -> web.Response:
    service, owner = request.app[SERVICE], request[OWNER]
    idem = _idempotency_key(request)
    if (existing := await service.replayed(owner, idem)) is not None:
        return model_response(v1.TaskCreated(existing), headers=_REPLAYED)

    async def before_file(name: str, form: Form) -> bool:
        if form.has("model_name"):
            # Every rule we can check already: refuse before storing a byte.
            params = read_task_params(form, has_file=True, known_models=MODELS)
            return params.video_url is None  # video_url wins: drop the file
        return True

    async with _form(request, v1.CREATE_TASK, before_file) as form:
        upload = form.files.get("video_file")
        has_file = upload is not None or "video_file" in form.discarded
        params = read_task_params(form, has_file=has_file, known_models=MODELS)
        created = await service.create(owner, params, upload, idempotency_key=idem)
    headers = _REPLAYED if created.replayed else None
    return model_response(v1.TaskCreated(created.id), headers=headers)


@contextlib.asynccontextmanager
async def _form(request: web.Request, spec: FormSpec, before_file: BeforeFile) -> Any:
    """The request's form under ``spec``; its files are removed when the block ends."""
    config = request.app[CONFIG]
    form = await read_form(
        request,
        spec,
        tmp_dir=request.app[TMP_DIR],
        max_file_bytes=config.max_upload_bytes,
        max_field_bytes=config.max_field_bytes,
        before_file=before_file,
    )
    try:
        yield form
    finally:
        await asyncio.shield(form.cleanup())


# -- status, retrieve, list -----------------------------------------------------------


@_operation("task_status")
async def task_status(request: web.Request) -> web.Response:
    _check_query(request, "task_status")
    view = await request.app[SERVICE].view(request[OWNER], request.match_info["task_id"])
    return model_response(_task(view), headers=_poll_headers(request))


@_operation("retrieve_task")
async def retrieve_task(request: web.Request) -> web.Response:
    _check_query(request, "retrieve_task")
    wanted = [o for v in request.query.getall("embedding_option", []) for o in v.split(",") if o]
    task_id = request.match_info["task_id"]
    view = await request.app[SERVICE].retrieve(request[OWNER], task_id, wanted)
    if view.segments is None:
        return model_response(_task(view), headers=_poll_headers(request))
    body = v1.unstructure(_task(view))
    if len(view.segments) > 64:
        # Thousands of vectors: serialise off the loop.
        return await asyncio.get_running_loop().run_in_executor(None, json_response, body)
    return json_response(body)


def _task(view: TaskView) -> v1.EmbedTask:
    return task_model(
        view.record, progress=view.progress, options=view.options, segments=view.segments
    )


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise invalid(name, f"{name} should be given once.")
    text = values[0].strip()
    try:
        value = int(text)
    except ValueError:
        number = parse_number(name, text)
        if not number.is_integer():
            raise invalid(name, f"{name} should be an integer.") from None
        value = int(number)
    if not lo <= value <= hi:
        raise invalid(name, f"{name} should be between {lo} and {hi}.")
    return value


def _time_param(request: web.Request, name: str) -> float | None:
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise invalid(name, f"{name} should be given once.")
    text = values[0].strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        raise invalid(
            name, f"{name} should be an RFC 3339 date-time such as 2026-11-25T10:00:00Z."
        ) from None


@_operation("list_tasks")
async def list_tasks(request: web.Request) -> web.Response:
    _check_query(request, "list_tasks")
    page_number = _int_param(request, "page", 1, 1, 1_000_000_000)
    limit = _int_param(request, "page_limit", 10, 1, 50)
    started = _time_param(request, "started_at")
    ended = _time_param(request, "ended_at")
    statuses = list(
        dict.fromkeys(s for v in request.query.getall("status", []) for s in v.split(",") if s)
    )
    for status in statuses:
        if status not in v1.STATUSES:
            raise invalid("status", "status should be processing, ready or failed.")
    page = await request.app[SERVICE].page(
        request[OWNER],
        page=page_number,
        limit=limit,
        statuses=statuses,
        created_from=started,
        created_to=ended,
    )
    body = v1.TaskPage(
        data=[_task(view) for view in page.tasks],
        page_info=v1.PageInfo(
            limit_per_page=limit,
            page=page_number,
            total_page=math.ceil(page.total / limit),
            total_results=page.total,
        ),
    )
    return model_response(body, headers=_poll_headers(request))


# -- POST /embed ----------------------------------------------------------------------


@_operation("embed")
async def embed(request: web.Request) -> web.Response:
    async def before_file(name: str, form: Form) -> bool:
        # Refuse early when the rules can already be decided.
        if form.has("model_name"):
            _embed_input(form, extra=name)
        return True

    async with _form(request, v1.EMBED, before_file) as form:
        model_name, source = _embed_input(form)
        offset = read_audio_offset(form, source)
        result = await request.app[SERVICE].embed_sync(
            model_name,
            source,
            text=form.get("text") if source == "text" else None,
            upload=form.files.get(source),
            url=form.get(source) if source.endswith("_url") else None,
            offset=offset,
        )
    segments = [_vector(vec, s, e) for s, e, vec in result.vectors]
    media = v1.MediaEmbedding(segments, result.metadata)
    kind = {"text": "text_embedding", "image": "image_embedding", "audio": "audio_embedding"}
    body = v1.EmbedResponse(model_name, **{kind[source.split("_")[0]]: media})
    return model_response(body)


def _vector(data: bytes, start: float | None = None, end: float | None = None) -> v1.Segment:
    vector: Sequence[float] = np.frombuffer(data, dtype="<f4")  # type: ignore[assignment]
    return v1.Segment(vector, start_offset_sec=start, end_offset_sec=end)


def _embed_input(form: Form, *, extra: str | None = None) -> tuple[str, str]:
    """(model_name, the one input field given); ``extra`` is a file part just starting."""
    model_name = form.get("model_name") or None
    given = []
    for n in EMBED_INPUTS:
        if n == extra or n in form.files or n in form.discarded:
            given.append(n)
        elif n == "text" and "text" in form.fields:
            given.append(n)  # even empty: it is then refused as invalid, not missing
        elif any(form.fields.get(n, ())):
            given.append(n)
    source = check_embed_input(model_name, given, known_models=MODELS)
    assert model_name is not None  # checked above
    return model_name, source


# -- service routes -------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    app = request.app
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptime_sec": round(asyncio.get_running_loop().time() - app[STARTED], 3),
            "workers": app[DISPATCHER].pool.stats()["alive"],
        }
    )


routes.get("/health", name="health")(_health)
_operation("health_v")(_health)


@_operation("openapi")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app[CONFIG]))


@_operation("metrics")
async def metrics(request: web.Request) -> web.Response:
    """[ext] Request counts since start (this request excluded), tasks and workers."""
    _check_query(request, "metrics")
    app = request.app
    counter = app[METRICS]
    limiter = app[RATE_LIMITER]
    dispatcher = app[DISPATCHER]
    return json_response(
        {
            "since": counter.started,
            "requests": counter.snapshot(),
            "total_requests": counter.total(),
            "tasks": await app[STORE].status_counts(),
            "dispatcher": await dispatcher.stats(),
            "workers": dispatcher.pool.stats(),
            "sync_workers": app[SYNC_POOL].stats(),
            "rate_limit": None
            if limiter is None
            else {"requests": limiter.limit.requests, "per_sec": limiter.limit.per},
        }
    )
