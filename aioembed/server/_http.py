"""What every API version's HTTP adapter shares: who is asking, and how a refusal looks.

:func:`owner_for` is the one API-key check (the middleware and the ``Expect:
100-continue`` handler both call it); :func:`error_reply` is the one error
renderer (the middleware, the expect handler and the protocol-error path all
answer through it): the version's error body, ``x-request-id``, and a closed
connection when the request body was not read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from aiohttp import HttpVersion11, web

from .. import __version__
from .._params import invalid, parse_number, unknown
from ..contract._spec import ApiVersion
from ..errors import APIStatusError, AuthenticationError, ErrorCode
from ._keys import CONFIG, DISPATCHER, METRICS, OWNERS, STARTED
from ._render import error_response, json_response, new_request_id
from ._uploads import FORM_SLACK, too_large

__all__ = [
    "ERROR_BODY",
    "PUBLIC",
    "HttpAdapter",
    "Operations",
    "check_query",
    "error_reply",
    "expect_continue",
    "health",
    "idempotency_key",
    "int_param",
    "is_public",
    "owner_for",
    "poll_headers",
    "renderer_for",
    "time_param",
]

#: A sub-application's error renderer (its version's body shape); v1's by default.
ErrorRenderer = Callable[[APIStatusError, str], web.Response]
ERROR_BODY: web.AppKey[ErrorRenderer] = web.AppKey("error_body")
#: Route names of an application (root or version) answered without an API key.
PUBLIC = web.AppKey("public", frozenset[str])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Operations:
    """An API version's handlers, each registered (``@ops("name")``) under its contract
    operation's name; :meth:`app` routes them as the contract's table says."""

    def __init__(self, api: ApiVersion) -> None:
        self.api = api
        self._handlers: dict[str, Handler] = {}

    def __call__(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._handlers[name] = handler
            return handler

        return register

    def app(self, error_body: ErrorRenderer) -> web.Application:
        """The routes relative to the prefix the root app mounts them at, errors in
        ``error_body``'s shape; uploads answer ``Expect: 100-continue`` after checks."""
        app = web.Application()
        for op in self.api.operations:
            extra = {"expect_handler": expect_continue} if op.upload else {}
            handler = self._handlers[op.name]
            app.router.add_route(op.method, op.path, handler, name=op.name, **extra)
        app[ERROR_BODY] = error_body
        app[PUBLIC] = frozenset(op.name for op in self.api.operations if op.public)
        return app


@attrs.frozen
class HttpAdapter:
    """An API version's HTTP side: its contract and the sub-application serving it
    (mounted by the root app at ``api.prefix``)."""

    api: ApiVersion
    make_app: Callable[[], web.Application]


def owner_for(request: web.Request) -> str:
    """The owner hash of the request's ``x-api-key``; ``401 api_key_invalid`` otherwise."""
    key = request.headers.get("x-api-key", "")
    owner = request.config_dict[OWNERS].get(key) if key else None
    if owner is None:
        raise AuthenticationError(
            "The API key is missing or invalid; send a valid key in the x-api-key header.",
            code=ErrorCode.API_KEY_INVALID,
        )
    return owner


def error_reply(
    exc: APIStatusError,
    *,
    request_id: str | None = None,
    render: ErrorRenderer = error_response,
    close: bool = False,
) -> web.Response:
    """``exc`` as the contract's error response, ``x-request-id`` set (a new id if none)."""
    request_id = request_id or new_request_id()
    resp = render(exc, request_id)
    resp.headers["x-request-id"] = request_id
    if close:
        resp.force_close()
    return resp


def renderer_for(request: web.Request) -> ErrorRenderer:
    """The matched version's error renderer (v1's outside any version)."""
    for app in reversed(request.match_info.apps):
        if ERROR_BODY in app:
            return app[ERROR_BODY]
    return error_response


def is_public(request: web.Request) -> bool:
    """Whether the matched route is answered without a key (asked of the innermost app:
    ``config_dict`` in the root's middleware sees the root only)."""
    name = request.match_info.route.name
    for app in reversed(request.match_info.apps):
        if PUBLIC in app:
            return name in app[PUBLIC]
    return False


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` (curl sends it for uploads over 1 MB): answer a bad key or
    an oversized ``Content-Length`` *before* the client sends the body.

    aiohttp runs this before the middleware, so it renders and counts its own refusals.
    """
    config = request.config_dict[CONFIG]
    try:
        if request.headers.get("Expect", "").lower() != "100-continue":
            raise APIStatusError(
                "The Expect header is invalid. Only 100-continue is supported.",
                code=ErrorCode.PARAMETER_INVALID,
                status=417,
            )
        owner_for(request)
        if (request.content_length or 0) > config.max_upload_bytes + FORM_SLACK:
            raise too_large(config.max_upload_bytes, "request body")
    except APIStatusError as err:
        route = request.match_info.route.resource
        request.config_dict[METRICS].record(
            route.canonical if route else "", request.method, err.status
        )
        return error_reply(err, render=renderer_for(request), close=True)
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


def check_query(request: web.Request, api: ApiVersion, operation: str) -> None:
    """``400 parameter_unknown`` for a query parameter the operation does not take."""
    allowed = api.operation(operation).query
    for key in request.query:
        if key not in allowed:
            raise unknown(key)


def poll_headers(request: web.Request) -> dict[str, str]:
    return {"x-poll-after": f"{request.config_dict[CONFIG].poll_hint:g}"}


async def health(request: web.Request) -> web.Response:
    """[ext] Liveness, without a key: version, uptime and live workers."""
    config: Any = request.config_dict
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "uptime_sec": round(asyncio.get_running_loop().time() - config[STARTED], 3),
            "workers": config[DISPATCHER].pool.stats()["alive"],
        }
    )


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid("Idempotency-Key", "Idempotency-Key should be 1-255 printable characters.")
    return key


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
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


def time_param(request: web.Request, name: str) -> float | None:
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
