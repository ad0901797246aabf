"""How the v2 resources talk to the shared :class:`Transport`: JSON bodies in, models out.

Kept in one place so the v2 resources do not depend on the transport's calling
convention: a JSON body is sent as a fresh in-memory payload per attempt (a
36 MB base64 video must not be copied into a form), and answers are structured
with the v2 converter (a malformed one is the transport's
:class:`~aioembed.ResponseValidationError`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import aiohttp

from ..contract.v2 import converter
from .._wire import dumps
from ._transport import FormFactory, Transport

__all__ = ["get", "post_json"]

T = TypeVar("T")


def _parser(cls: type[T]) -> Callable[[Any], T]:
    def parse(data: Any) -> T:
        return converter().structure(data, cls)

    return parse


async def post_json(
    t: Transport,
    path: str,
    body: Mapping[str, Any],
    cls: type[T],
    *,
    idempotent: bool,
    headers: Mapping[str, str] | None = None,
) -> T:
    data = dumps(body)

    def payload() -> aiohttp.BytesIOPayload:
        return aiohttp.BytesIOPayload(io.BytesIO(data), content_type="application/json")

    return await t.request(
        "POST",
        path,
        _parser(cls),
        form=cast(FormFactory, payload),
        idempotent=idempotent,
        headers=headers,
    )


async def get(
    t: Transport, path: str, cls: type[T], params: Sequence[tuple[str, str]] | None = None
) -> T:
    return await t.request("GET", path, _parser(cls), params=params)
