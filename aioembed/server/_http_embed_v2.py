"""The Embed API v2 HTTP adapter: a sub-application mounted at ``/v1.3/embed-v2``.

Its routes come from :data:`aioembed.contract.v2.operations.API` (``""`` is the
synchronous embed, ``/tasks`` and ``/tasks/{task_id}`` the tasks); its errors use
v2's nested body (``ERROR_BODY``). Same task service, store, queue, workers, keys,
rate limits and idempotency as v1. A handler reads the JSON body under a cap
(``413 content_too_large`` while streaming), runs the validator the SDK runs
(:mod:`aioembed.contract.v2`), then the server's own rules in the contract's
precedence: documents are refused, URLs pass the URL gate, base64 media is
decoded to scratch, probed and its duration checked at create, then adopted by
the media store. An ``asset_id`` source must be the caller's ``ready`` asset of a
kind the input takes (else ``400`` naming ``….media_source.asset_id``); its file
is read where the asset service keeps it, never copied, and the asset cannot be
deleted (``409``) while a task or sync embed uses it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
from aiohttp import web

from .._wire import loads
from ..contract.v2 import (
    EmbeddingItem,
    EmbedSpec,
    EmbedV2Response,
    MediaSpec,
    Source,
    TaskSpec,
    Usage,
    V2Limits,
    check_embed_body,
    check_task_body,
    converter,
    invalid,
    spec_to_json,
)
from ..contract.v2.operations import API
from ..errors import ErrorCode, ParameterError, PayloadTooLargeError, ServerError
from ._http import (
    HttpAdapter,
    Operations,
    check_query,
    idempotency_key,
    int_param,
    time_param,
)
from ._keys import CONFIG, OWNER, PROBE_POOL, SERVICE, SYNC_POOL, TMP_DIR
from ._redact import redact_url
from ._render import json_response
from ._store import NewTask, new_task_id
from ._http_assets import ASSETS
from ._v2_engine import MAX_DURATION, V2Bounds, V2EmbedJob, V2MediaError, check_duration
from ._v2_http import v2_error_response
from ._v2_render import (
    created_body,
    expired,
    sync_metadata,
    task_body,
    task_spec,
    task_summary_body,
    vector,
)
from ._service import busy_error
from ._workers import JobError, PoolBusyError, ProbeJob, WorkerDied, decoder_threads

__all__ = ["ADAPTER"]

T = TypeVar("T")
_operation = Operations(API)

MB = 1024 * 1024
_CHUNK = 256 * 1024
#: Bodies larger than this are parsed and checked off the event loop.
_BIG = 1024 * 1024
#: ``started_at``/``ended_at`` both absent: the last 7 days.
DEFAULT_WINDOW = 7 * 86400.0
_STATUSES = ("processing", "ready", "failed")


def max_body(limits: V2Limits) -> int:
    """Largest JSON body: the largest base64 media (36 MB decoded) plus room for the rest."""
    return math.ceil(limits.base64_media_bytes * 4 / 3) + MB


def _body_too_large(cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body exceeds the maximum of {cap / MB:.1f} MB.",
        code=ErrorCode.CONTENT_TOO_LARGE,
    )


async def _off_loop(big: bool, fn: Callable[..., T], *args: Any) -> T:
    if not big:
        return fn(*args)
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def read_json(request: web.Request) -> tuple[Any, bool]:
    """The body as JSON, read under :func:`max_body`, and whether it is big (to be checked
    off the loop); 413 while streaming, 400 if not JSON."""
    cap = max_body(request.config_dict[CONFIG].v2_limits)
    if (request.content_length or 0) > cap:
        raise _body_too_large(cap)
    buf = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        buf += chunk
        if len(buf) > cap:
            raise _body_too_large(cap)
    big = len(buf) > _BIG
    try:
        return await _off_loop(big, loads, bytes(buf)), big
    except ValueError:
        raise invalid("body", "The request body should be JSON.") from None


def _refuse_documents(spec_type: str, media_types: list[tuple[str, str]]) -> None:
    """The local engine embeds no documents (the SDK still sends them to TwelveLabs)."""
    for path, kind in media_types:
        if kind == "document":
            raise ParameterError("The local engine does not embed documents.", parameter=path)


#: The asset kinds an input takes (a video's sound is an audio input).
_ASSET_KINDS = {"video": ("video",), "audio": ("audio", "video"), "image": ("image",)}


def _check_duration(media: MediaSpec, duration: float | None, parameter: str) -> None:
    """A task's duration limits at create, when the media is at hand (asset, base64)."""
    if duration is None:
        return
    try:
        check_duration(media, duration, MAX_DURATION)
    except V2MediaError as e:
        raise invalid(parameter, e.message) from None


async def _check_url(request: web.Request, source: Source, path: str) -> None:
    if source.kind == "url":
        try:
            await request.config_dict[SERVICE].urls.check(source.value, f"{path}.url")
        except ParameterError as e:
            raise ParameterError(e.message, code=e.code, parameter=f"{path}.url") from None


def _write_base64(source: Source, dest: Path) -> int:
    data = base64.b64decode(source.value, validate=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return len(data)


async def _materialize(request: web.Request, source: Source, path: str, dest: Path) -> None:
    """Put the media behind ``source`` at ``dest`` (base64 decoded, URL fetched in one of
    the key's fetch slots)."""
    if source.kind == "base64_string":
        try:
            await _off_loop(True, _write_base64, source, dest)
        except binascii.Error:
            raise invalid(f"{path}.base64_string", f"{path}.base64_string should be valid base64.")
        return
    try:
        await request.config_dict[SERVICE].urls.fetch(
            source.value, dest, f"{path}.url", owner=request[OWNER]
        )
    except ParameterError as e:
        raise ParameterError(e.message, code=e.code, parameter=f"{path}.url") from None


async def _probe(request: web.Request, media: MediaSpec, path: Path) -> float | None:
    """Probe base64 media at create: 400 naming the source when it is not usable media."""
    config = request.config_dict[CONFIG]
    where = f"{media.input_type}.media_source"
    if media.input_type == "audio":
        return None  # audio-only files are checked in the task
    try:
        pool = request.config_dict[PROBE_POOL]
        job = ProbeJob(str(path), threads=decoder_threads(config))
        info = await pool.run(job, timeout=config.probe_timeout)
    except JobError as e:
        raise invalid(where, f"The {media.input_type} could not be decoded: {e.message}") from None
    except PoolBusyError:
        raise busy_error("probe", config.probe_timeout) from None
    except (WorkerDied, TimeoutError):
        raise invalid(where, f"The {media.input_type} could not be decoded.") from None
    return float(info["duration"]) if media.input_type == "video" else None


# -- POST /embed-v2/tasks ---------------------------------------------------------------


@_operation("v2.tasks.create")
async def create_task(request: web.Request) -> web.Response:
    check_query(request, API, "v2.tasks.create")
    config, service = request.config_dict[CONFIG], request.config_dict[SERVICE]
    owner = request[OWNER]
    idem = idempotency_key(request)
    if (existing := await service.replayed(owner, idem)) is not None:
        return await _replayed(request, existing)
    body, big = await read_json(request)
    spec: TaskSpec = await _off_loop(big, check_task_body, body, config.v2_limits)
    media = spec.media
    _refuse_documents(media.input_type, [("document", media.input_type)])
    where = f"{media.input_type}.media_source"
    await _check_url(request, media.source, where)
    task_id = new_task_id()
    if media.source.kind == "asset_id":
        return await _create_from_asset(request, spec, task_id, idem)
    dest: Path | None = None
    duration = size = None
    try:
        if media.source.kind == "base64_string":
            dest = request.config_dict[TMP_DIR] / f"{task_id}.part"
            await _materialize(request, media.source, where, dest)
            size = dest.stat().st_size
            if config.probe_on_create:
                duration = await _probe(request, media, dest)
                _check_duration(media, duration, f"{where}.base64_string")
        task = _new_task(spec, task_id, owner, duration, size)
        if media.source.kind == "url" and task.input_url != media.source.value:
            service.urls.remember(task_id, media.source.value)
        created = await service.create_stored(task, dest, idempotency_key=idem)
    finally:
        if dest is not None:
            dest.unlink(missing_ok=True)  # adopted by the media store, or refused
    if created.replayed:  # lost a race with the same idempotency key
        return await _replayed(request, created.id)
    return json_response(created_body(task_id, spec))


async def _create_from_asset(
    request: web.Request, spec: TaskSpec, task_id: str, idem: str | None
) -> web.Response:
    """A task over the caller's ``ready`` asset: held while the task is stored (from then
    on the stored ``processing`` task keeps it from being deleted), never copied."""
    media, owner = spec.media, request[OWNER]
    assets = request.config_dict[ASSETS]
    param = f"{media.input_type}.media_source.asset_id"
    asset_id = media.source.value
    rec = await assets.acquire(
        owner, asset_id, kinds=_ASSET_KINDS[media.input_type], parameter=param
    )
    try:
        duration = rec.duration if media.input_type != "image" else None
        _check_duration(media, duration, param)
        task = _new_task(spec, task_id, owner, duration, rec.size, filename=rec.filename)
        created = await request.config_dict[SERVICE].create_stored(task, None, idempotency_key=idem)
    finally:
        assets.release(asset_id)
    if created.replayed:  # lost a race with the same idempotency key
        return await _replayed(request, created.id)
    return json_response(created_body(task_id, spec))


def _new_task(
    spec: TaskSpec,
    task_id: str,
    owner: str,
    duration: float | None,
    size: int | None,
    *,
    filename: str | None = None,
) -> NewTask:
    media = spec.media
    seg = media.segmentation
    if media.source.kind == "url":  # the URL as given lives only in the URL gate's memory
        source = attrs.evolve(media.source, value=redact_url(media.source.value))
        spec = attrs.evolve(spec, media=attrs.evolve(media, source=source))
    return NewTask(
        id=task_id,
        owner=owner,
        model_name=spec.model_name,
        clip_length=float(seg.seconds) if seg is not None else 0.0,
        scopes=media.scopes,
        options=media.options,
        start=media.start,
        end=media.end,
        input_url=redact_url(media.source.value) if media.source.kind == "url" else None,
        input_filename=filename,
        duration=duration,
        media_size=size,
        spec=json.dumps(spec_to_json(spec)),
    )


async def _replayed(request: web.Request, task_id: str) -> web.Response:
    rec = await request.config_dict[SERVICE].store.get_task(task_id, owner=request[OWNER])
    if rec is None or rec.spec is None:
        raise invalid("Idempotency-Key", "Idempotency-Key was used for another kind of request.")
    return json_response(
        created_body(task_id, task_spec(rec)), headers={"Idempotent-Replayed": "true"}
    )


# -- GET /embed-v2/tasks/{id}, GET /embed-v2/tasks ------------------------------------


@_operation("v2.tasks.retrieve")
async def retrieve_task(request: web.Request) -> web.Response:
    check_query(request, API, "v2.tasks.retrieve")
    service = request.config_dict[SERVICE]
    rec = await service.record(request[OWNER], request.match_info["task_id"], api="v2")
    rec = expired(rec, request.config_dict[CONFIG].v2_result_retention)
    if rec.status != "ready":
        return json_response(task_body(rec))
    segments = await service.store.get_segments(rec.id)
    if len(segments) > 64:
        return await _off_loop(True, lambda: json_response(task_body(rec, segments)))
    return json_response(task_body(rec, segments))


@_operation("v2.tasks.list")
async def list_tasks(request: web.Request) -> web.Response:
    check_query(request, API, "v2.tasks.list")
    config = request.config_dict[CONFIG]
    page = int_param(request, "page", 1, 1, 1_000_000_000)
    limit = int_param(request, "page_limit", 10, 1, 50)
    started = time_param(request, "started_at")
    ended = time_param(request, "ended_at")
    if started is None and ended is None:
        started = time.time() - DEFAULT_WINDOW
    statuses = list(
        dict.fromkeys(s for v in request.query.getall("status", []) for s in v.split(",") if s)
    )
    for status in statuses:
        if status not in _STATUSES:
            raise invalid("status", "status should be processing, ready or failed.")
    recs, total = await request.config_dict[SERVICE].store.list_tasks(
        request[OWNER],
        statuses=statuses,
        created_from=started,
        created_to=ended,
        offset=(page - 1) * limit,
        limit=limit,
        api="v2",
    )
    body = {
        "data": [task_summary_body(expired(r, config.v2_result_retention)) for r in recs],
        "page_info": {
            "limit_per_page": limit,
            "page": page,
            "total_page": math.ceil(total / limit),
            "total_results": total,
        },
    }
    return json_response(body)


# -- POST /embed-v2 ---------------------------------------------------------------------


def _sources(spec: EmbedSpec) -> list[tuple[str, Source, str]]:
    """(JSON path, source, media type) of every media the request names."""
    if spec.input_type == "multi_input":
        return [
            (f"multi_input.media_sources[{i}]", s.source, s.media_type)
            for i, s in enumerate(spec.sources)
        ]
    if spec.media is None:
        return []
    kind = "image" if spec.input_type == "text_image" else spec.input_type
    return [(f"{spec.input_type}.media_source", spec.media.source, kind)]


@_operation("v2.embed")
async def embed(request: web.Request) -> web.Response:
    check_query(request, API, "v2.embed")
    app, config = request.config_dict, request.config_dict[CONFIG]
    body, big = await read_json(request)
    spec: EmbedSpec = await _off_loop(big, check_embed_body, body, config.v2_limits)
    sources = _sources(spec)
    _refuse_documents(spec.input_type, [(f"{p}.media_type", k) for p, _, k in sources])
    for path, source, _ in sources:
        await _check_url(request, source, path)
    files: list[Path] = []
    try:
        async with contextlib.AsyncExitStack() as held:
            paths = await _sync_inputs(request, sources, held, files)
            if spec.input_type in ("audio", "video"):  # debited by the measured duration
                result = await app[SERVICE].metered(
                    request[OWNER],
                    lambda: _run_sync(app, spec, paths, sources),
                    lambda r: float(r.get("duration") or 0.0),
                )
            else:
                result = await _run_sync(app, spec, paths, sources)
    finally:
        for f in files:
            await _off_loop(True, lambda p=f: p.unlink(missing_ok=True))
    return json_response(_embed_answer(spec, result, sources))


async def _sync_inputs(
    request: web.Request,
    sources: list[tuple[str, Source, str]],
    held: contextlib.AsyncExitStack,
    files: list[Path],
) -> list[tuple[str, str]]:
    """(JSON path, local file) per source, in order: assets held for ``held``'s block
    (checked first: existence before media, as the contract orders), the rest
    materialized into scratch ``files``."""
    app = request.config_dict
    local: dict[str, str] = {}
    for path, source, kind in sources:
        if source.kind == "asset_id":
            use = app[ASSETS].use(
                request[OWNER], source.value, kinds=_ASSET_KINDS[kind], parameter=f"{path}.asset_id"
            )
            local[path] = str(await held.enter_async_context(use))
    for path, source, _ in sources:
        if source.kind != "asset_id":
            dest = app[TMP_DIR] / f"{new_task_id()}.part"
            files.append(dest)
            await _materialize(request, source, path, dest)
            local[path] = str(dest)
    return [(path, local[path]) for path, _, _ in sources]


async def _run_sync(
    app: Any,
    spec: EmbedSpec,
    paths: list[tuple[str, str]],
    sources: list[tuple[str, Source, str]],
) -> dict[str, Any]:
    """The sync worker's answer; engine errors as the contract's 400 (500 for a bug)."""
    config = app[CONFIG]
    job = V2EmbedJob(
        json.dumps(spec_to_json(spec)),
        tuple(paths),
        config.backend,
        truncate_at=config.v2_limits.text_tokens_35,
        bounds=V2Bounds(config.media_limits, decoder_threads(config), config.max_image_pixels),
    )
    try:
        result: dict[str, Any] = await app[SYNC_POOL].run(job, timeout=config.sync_timeout)
    except JobError as e:
        if e.code == ErrorCode.INTERNAL_ERROR:
            raise ServerError(e.message, code=ErrorCode.INTERNAL_ERROR) from None
        where = sources[0][0] if sources else spec.input_type
        raise ParameterError(e.message, code=e.code, parameter=where) from None
    except PoolBusyError:
        raise busy_error("sync", config.sync_timeout) from None
    except (WorkerDied, TimeoutError):
        raise ServerError(
            "The embedding could not be computed.", code=ErrorCode.INTERNAL_ERROR
        ) from None
    return result


def _embed_answer(
    spec: EmbedSpec, result: dict[str, Any], sources: list[tuple[str, Source, str]]
) -> dict[str, Any]:
    timed = spec.input_type in ("audio", "video")
    data = [
        EmbeddingItem(
            embedding=vector(vec),
            embedding_uncertainty=None if unc is None else vector(unc),
            embedding_option=option or None,
            embedding_scope=scope or None,
            start_sec=start if timed else None,
            end_sec=end if timed else None,
        )
        for start, end, scope, option, vec, unc in result["rows"]
    ]
    usage = Usage(**result["usage"]) if result.get("usage") else None
    url = next((src.value for _, src, _ in sources if src.kind == "url"), None)
    metadata = sync_metadata(spec, result.get("duration"), url)
    answer = EmbedV2Response(data=data, usage=usage, metadata=metadata)
    out: dict[str, Any] = converter().unstructure(answer)
    return out


def make_app() -> web.Application:
    """The v2 routes, relative to the prefix the root app mounts this at."""
    return _operation.app(v2_error_response)


ADAPTER = HttpAdapter(API, make_app)
