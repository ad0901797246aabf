"""Converter hooks every API version shares (times), and the rename helper.

In the style of :mod:`cattrs.preconf`: ``configure_converter`` adds hooks to a
converter the caller made, nothing is configured at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._wire import format_datetime

__all__ = ["configure_converter", "register_renamed"]


def _parse_datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def configure_converter(converter: cattrs.Converter) -> None:
    """RFC 3339 UTC times (``2026-11-25T10:00:00Z``) both ways."""
    converter.register_structure_hook(datetime, _parse_datetime)
    converter.register_unstructure_hook(datetime, format_datetime)


def _passthrough(value: Any, _: Any = None) -> Any:
    return value


def register_renamed(
    converter: cattrs.Converter,
    cls: type,
    *,
    omit_none: bool = False,
    raw: tuple[str, ...] = (),
    order: tuple[str, ...] = (),
    renames: Mapping[str, str] | None = None,
) -> None:
    """Hooks for ``cls`` with wire names ``renames`` (attribute -> key).

    ``omit_none`` leaves out attributes at their default (``None``) when writing;
    ``raw`` attributes pass through untouched both ways (vectors: the parser's
    float32 array in, the server's array out); ``order`` fixes the written key
    order where the wire's differs from the attribute order.
    """
    renames = renames or {}
    fields: dict[str, Any] = {
        name: override(
            rename=renames.get(name),
            struct_hook=_passthrough if name in raw else None,
            unstruct_hook=_passthrough if name in raw else None,
        )
        for name in {*renames, *raw}
    }
    converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **fields))
    unstructure: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=omit_none, **fields
    )
    if order:
        inner = unstructure

        def unstructure(obj: Any) -> dict[str, Any]:
            body = inner(obj)
            return {key: body[key] for key in order if key in body}

    converter.register_unstructure_hook(cls, unstructure)
