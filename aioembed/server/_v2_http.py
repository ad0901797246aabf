"""What the v2-style HTTP routes (``/embed-v2``, ``/assets``, multipart uploads) share: the nested
error body, RFC 3339 times, and page parsing/answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from datetime import UTC, datetime

from aiohttp import web

from .._params import invalid
from ..contract import assets as ASSETS
from ..errors import APIStatusError
from ._render import json_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

__all__ = ["PREFIX", "mount", "page_info", "parse_page", "rfc3339", "v2_error_response"]

#: Where the ``/assets`` sub-application is mounted.
PREFIX = ASSETS.PREFIX


def v2_error_response(exc: APIStatusError, request_id: str) -> web.Response:
    """The v2 error body with the error's status and headers."""
    error: dict[str, Any] = {"code": str(exc.code), "message": exc.message}
    if exc.details:
        error["details"] = dict(exc.details)
    error["request_id"] = request_id
    body = {"error": error}
    resp = json_response(body, status=exc.status)
    resp.headers.update(exc.headers)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(int(retry_after))
    return resp


def rfc3339(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


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


def mount(app: web.Application, handlers: Mapping[str, Handler]) -> frozenset[str]:
    """Add ``handlers`` (by operation name) at the contract's paths; returns the public names."""
    for name, handler in handlers.items():
        op = ASSETS.API.operation(name)
        app.router.add_route(op.method, op.path, handler, name=name)
    return frozenset(name for name in handlers if ASSETS.API.operation(name).public)
