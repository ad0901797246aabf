"""Embed API v1's HTTP adapter: a sub-application mounted at ``/v1.3``.

Handlers parse (form and query, by the v1 contract), call one
:class:`~._service.TaskService` method and render the result through the v1
models. They raise :mod:`aioembed.errors` exceptions; the root app's one
middleware renders them. Checks run in the contract's precedence:
``parameter_unknown``, ``parameter_not_provided``, ``parameter_invalid``, then
``resource_not_exist`` (the key and the route were checked by the middleware).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiohttp import web

from .._params import EMBED_INPUTS, MODELS, check_embed_input, invalid, parse_number
from ..contract import v1
from ..contract._spec import FormSpec
from ..contract.v1.forms import read_audio_offset, read_task_params
from ._http import HttpAdapter, Operations, check_query, health
from ._http import idempotency_key as _idempotency_key
from ._http import int_param as _int_param
from ._http import poll_headers as _poll_headers
from ._http import time_param as _time_param
from ._keys import (
    CONFIG,
    OWNER,
    SERVICE,
    TMP_DIR,
)
from ._metrics_view import metrics_body
from ._openapi import openapi_document
from ._render import error_response, json_response, model_response, task_model
from ._service import TaskView
from ._uploads import BeforeFile, Form, read_form

__all__ = ["ADAPTER"]

_operation = Operations(v1.API)


def make_app() -> web.Application:
    """The v1 routes, relative to the prefix the root app mounts this at."""
    return _operation.app(error_response)


def _check_query(request: web.Request, operation: str) -> None:
    check_query(request, v1.API, operation)


# -- create ---------------------------------------------------------------------------


_REPLAYED = {"Idempotent-Replayed": "true"}


@_operation("create_task")
async def create_task(request: web.Request) -> web.Response:
    service, owner = request.config_dict[SERVICE], request[OWNER]
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
    config = request.config_dict[CONFIG]
    form = await read_form(
        request,
        spec,
        tmp_dir=request.config_dict[TMP_DIR],
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
    view = await request.config_dict[SERVICE].view(request[OWNER], request.match_info["task_id"])
    return model_response(_task(view), headers=_poll_headers(request))


@_operation("retrieve_task")
async def retrieve_task(request: web.Request) -> web.Response:
    _check_query(request, "retrieve_task")
    wanted = [o for v in request.query.getall("embedding_option", []) for o in v.split(",") if o]
    task_id = request.match_info["task_id"]
    view = await request.config_dict[SERVICE].retrieve(request[OWNER], task_id, wanted)
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
    page = await request.config_dict[SERVICE].page(
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
        result = await request.config_dict[SERVICE].embed_sync(
            model_name,
            source,
            text=form.get("text") if source == "text" else None,
            upload=form.files.get(source),
            url=form.get(source) if source.endswith("_url") else None,
            offset=offset,
            owner=request[OWNER],
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


_operation("health_v")(health)


@_operation("openapi")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.config_dict[CONFIG]))


@_operation("metrics")
async def metrics(request: web.Request) -> web.Response:
    """[ext] The caller's request counts since start (this request excluded) and tasks;
    the whole server for an operator key."""
    _check_query(request, "metrics")
    return json_response(await metrics_body(request.config_dict, request[OWNER]))


ADAPTER = HttpAdapter(v1.API, make_app)
