"""The HTTP handlers, on one ``RouteTableDef``; methods and paths from the v1 contract table.

Handlers raise :mod:`aioembed.errors` exceptions; the app's one middleware
turns them into the contract's JSON. Checks run in the contract's precedence:
``parameter_unknown``, ``parameter_not_provided``, ``parameter_invalid``, then
``resource_not_exist`` (the key and the route were checked by the middleware).
"""

from __future__ import annotations

import asyncio
import math
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import HttpVersion11, web

from .. import __version__
from .._params import EMBED_INPUTS, MODELS, check_embed_input, invalid, parse_number, unknown
from ..contract import v1
from ..contract.v1.forms import read_audio_offset, read_task_params
from ..errors import (
    APIStatusError,
    AuthenticationError,
    ErrorCode,
    NotFoundError,
    ParameterError,
)
from ._keys import (
    CONFIG,
    DISPATCHER,
    MEDIA_DIR,
    METRICS,
    OWNER,
    OWNERS,
    RATE_LIMITER,
    STARTED,
    STORE,
    SYNC_POOL,
    TMP_DIR,
    URL_POLICY,
    URL_SESSION,
)
from ._openapi import openapi_document
from ._render import (
    error_response,
    json_response,
    model_response,
    new_request_id,
    task_model,
)
from ._store import NewTask, new_task_id
from ._uploads import FORM_SLACK, Form, UploadedFile, read_form, too_large
from ._urlfetch import check_url, fetch_to_file
from ._workers import (
    AudioJob,
    ImageJob,
    JobError,
    ProbeJob,
    TextJob,
    WorkerDied,
    check_offsets,
)

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


async def _task_or_404(request: web.Request) -> Any:
    task_id = request.match_info["task_id"]
    rec = None
    if _ID.fullmatch(task_id):
        rec = await request.app[STORE].get_task(task_id, owner=request[OWNER])
    if rec is None:
        shown = task_id if len(task_id) <= 40 else task_id[:37] + "..."
        raise NotFoundError(
            f"The embedding task {shown!r} does not exist.", code=ErrorCode.RESOURCE_NOT_EXIST
        )
    return rec


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
    app = request.app
    config, store, owner = app[CONFIG], app[STORE], request[OWNER]
    idem = _idempotency_key(request)
    if idem is not None:
        existing = await store.find_idempotent(owner, idem, max_age=config.idempotency_ttl)
        if existing is not None:
            return model_response(v1.TaskCreated(existing), headers=_REPLAYED)

    async def before_file(name: str, form: Form) -> bool:
        if form.has("model_name"):
            # Every rule we can check already: refuse before storing a byte.
            params = read_task_params(form, has_file=True, known_models=MODELS)
            return params.video_url is None  # video_url wins: drop the file
        return True

    form = await read_form(
        request,
        v1.CREATE_TASK,
        tmp_dir=app[TMP_DIR],
        max_file_bytes=config.max_upload_bytes,
        max_field_bytes=config.max_field_bytes,
        before_file=before_file,
    )
    try:
        upload = form.files.get("video_file")
        has_file = upload is not None or "video_file" in form.discarded
        params = read_task_params(form, has_file=has_file, known_models=MODELS)
        duration: float | None = None
        if params.video_url is not None:
            await check_url(params.video_url, "video_url", app[URL_POLICY])
            upload = None  # the URL wins; the file (if any) is dropped by cleanup
        elif upload is not None and config.probe_on_create:
            duration = await _probe_video(request, upload)
            check_offsets(params.start, params.end, duration)
        task_id = new_task_id()
        if upload is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, upload.claim, app[MEDIA_DIR] / task_id
            )
        task = NewTask(
            id=task_id,
            owner=owner,
            model_name=params.model_name,
            clip_length=params.clip_length,
            scopes=params.scopes,
            options=MODELS[params.model_name].video_options,
            start=params.start,
            end=params.end,
            input_url=params.video_url,
            input_filename=upload.filename if upload is not None else None,
            duration=duration,
            media_sha256=upload.sha256 if upload is not None else None,
            media_size=upload.size if upload is not None else None,
        )
        try:
            stored = await store.create_task(task, idempotency_key=idem)
        except BaseException:
            _unlink(app[MEDIA_DIR] / task_id)
            raise
        if stored != task_id:  # lost a race with the same idempotency key
            _unlink(app[MEDIA_DIR] / task_id)
            return model_response(v1.TaskCreated(stored), headers=_REPLAYED)
        app[DISPATCHER].submit(task_id)
        return model_response(v1.TaskCreated(task_id))
    finally:
        await asyncio.shield(form.cleanup())


def _unlink(path: os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def _probe_video(request: web.Request, upload: UploadedFile) -> float:
    """Probe and check the uploaded video in a worker; 400 with the contract code if bad."""
    config = request.app[CONFIG]
    try:
        info = await request.app[SYNC_POOL].run(
            ProbeJob(str(upload.path), config.media_limits), timeout=config.sync_timeout
        )
    except JobError as e:
        raise ParameterError(e.message, code=e.code) from None
    except (WorkerDied, TimeoutError):
        raise ParameterError(
            "The video file is broken or not a supported video: probing it failed.",
            code=ErrorCode.VIDEO_FILE_BROKEN,
        ) from None
    return float(info["duration"])


# -- status, retrieve, list -----------------------------------------------------------


@_operation("task_status")
async def task_status(request: web.Request) -> web.Response:
    _check_query(request, "task_status")
    rec = await _task_or_404(request)
    progress = request.app[DISPATCHER].progress.get(rec.id)
    return model_response(task_model(rec, progress=progress), headers=_poll_headers(request))


@_operation("retrieve_task")
async def retrieve_task(request: web.Request) -> web.Response:
    _check_query(request, "retrieve_task")
    wanted = [o for v in request.query.getall("embedding_option", []) for o in v.split(",") if o]
    for option in wanted:
        if option not in _ALL_OPTIONS:
            raise invalid(
                "embedding_option",
                f"embedding_option should be one of {', '.join(_ALL_OPTIONS)}; "
                f"{option[:40]!r} is not supported.",
            )
    rec = await _task_or_404(request)
    model_options = MODELS[rec.model_name].video_options
    for option in wanted:
        if option not in model_options:
            raise invalid(
                "embedding_option",
                f"embedding_option should be one of {', '.join(model_options)} "
                f"for {rec.model_name}.",
            )
    options = [o for o in rec.options if o in wanted] if wanted else list(rec.options)
    if rec.status != "ready":
        progress = request.app[DISPATCHER].progress.get(rec.id)
        task = task_model(rec, progress=progress, options=options)
        return model_response(task, headers=_poll_headers(request))
    segments = await request.app[STORE].get_segments(rec.id, options=options)
    body = v1.unstructure(task_model(rec, options=options, segments=segments))
    if len(segments) > 64:
        # Thousands of vectors: serialise off the loop.
        return await asyncio.get_running_loop().run_in_executor(None, json_response, body)
    return json_response(body)


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
    page = _int_param(request, "page", 1, 1, 1_000_000_000)
    limit = _int_param(request, "page_limit", 10, 1, 50)
    started = _time_param(request, "started_at")
    ended = _time_param(request, "ended_at")
    statuses = list(
        dict.fromkeys(s for v in request.query.getall("status", []) for s in v.split(",") if s)
    )
    for status in statuses:
        if status not in v1.STATUSES:
            raise invalid("status", "status should be processing, ready or failed.")
    recs, total = await request.app[STORE].list_tasks(
        request[OWNER],
        statuses=statuses,
        created_from=started,
        created_to=ended,
        offset=(page - 1) * limit,
        limit=limit,
    )
    progress = request.app[DISPATCHER].progress
    body = v1.TaskPage(
        data=[task_model(r, progress=progress.get(r.id)) for r in recs],
        page_info=v1.PageInfo(
            limit_per_page=limit,
            page=page,
            total_page=math.ceil(total / limit),
            total_results=total,
        ),
    )
    return model_response(body, headers=_poll_headers(request))


# -- POST /embed ----------------------------------------------------------------------


def _media_error(param: str, message: str) -> ParameterError:
    if message.startswith(f"The {param} parameter"):
        return ParameterError(message)
    return invalid(param, message)


@_operation("embed")
async def embed(request: web.Request) -> web.Response:
    app = request.app
    config = app[CONFIG]

    async def before_file(name: str, form: Form) -> bool:
        # Refuse early when the rules can already be decided.
        if form.has("model_name"):
            _embed_input(form, extra=name)
        return True

    form = await read_form(
        request,
        v1.EMBED,
        tmp_dir=app[TMP_DIR],
        max_file_bytes=config.max_upload_bytes,
        max_field_bytes=config.max_field_bytes,
        before_file=before_file,
    )
    try:
        model_name, source = _embed_input(form)
        offset = read_audio_offset(form, source)
        if source == "text":
            text = form.get("text") or ""
            if not text.strip():
                raise invalid("text", "text should not be empty.")
            job: Any = TextJob(text, model_name, config.backend)
        else:
            path = await _embed_file(request, form, source)
            if source.startswith("image"):
                job = ImageJob(str(path), model_name, config.backend)
            else:
                job = AudioJob(str(path), model_name, offset, config.backend)
        try:
            result = await app[SYNC_POOL].run(job, timeout=config.sync_timeout)
        except JobError as e:
            if e.code == ErrorCode.INTERNAL_ERROR:
                raise
            raise _media_error(source, e.message) from None
        except (WorkerDied, TimeoutError):
            raise _media_error(source, f"{source} could not be processed.") from None
    finally:
        await asyncio.shield(form.cleanup())
    if source == "text":
        body = v1.EmbedResponse(model_name, text_embedding=v1.MediaEmbedding([_vector(result)]))
    elif source.startswith("image"):
        image = v1.MediaEmbedding([_vector(result)], _input_metadata(form, source))
        body = v1.EmbedResponse(model_name, image_embedding=image)
    else:
        segments = [_vector(vec, s, e) for s, e, vec in result]
        audio = v1.MediaEmbedding(segments, _input_metadata(form, source))
        body = v1.EmbedResponse(model_name, audio_embedding=audio)
    return model_response(body)


def _vector(data: bytes, start: float | None = None, end: float | None = None) -> v1.Segment:
    vector: Sequence[float] = np.frombuffer(data, dtype="<f4")  # type: ignore[assignment]
    return v1.Segment(vector, start_offset_sec=start, end_offset_sec=end)


def _input_metadata(form: Form, source: str) -> dict[str, Any]:
    if source.endswith("_url"):
        return {"input_url": form.get(source)}
    upload = form.files.get(source)
    return {"input_filename": upload.filename if upload is not None else None}


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


async def _embed_file(request: web.Request, form: Form, source: str) -> os.PathLike[str]:
    upload = form.files.get(source)
    if upload is not None:
        return upload.path
    app, config = request.app, request.app[CONFIG]
    url = form.get(source) or ""
    dest = app[TMP_DIR] / f"{new_task_id()}.part"
    fetched = await fetch_to_file(
        app[URL_SESSION],
        url,
        dest,
        param=source,
        policy=app[URL_POLICY],
        max_bytes=config.url_max_bytes,
        timeout=config.url_fetch_timeout,
        max_redirects=config.url_max_redirects,
    )
    # Registered with the form so its cleanup removes the download too.
    form.files[source] = UploadedFile(
        field=source,
        path=fetched.path,
        size=fetched.size,
        sha256=fetched.sha256,
        filename=fetched.filename,
        content_type=None,
    )
    return fetched.path


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
            "dispatcher": dispatcher.stats(),
            "workers": dispatcher.pool.stats(),
            "sync_workers": app[SYNC_POOL].stats(),
            "rate_limit": None
            if limiter is None
            else {"requests": limiter.limit.requests, "per_sec": limiter.limit.per},
        }
    )
