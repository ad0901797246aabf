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
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 time, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _strict_str(value: Any, cls: Any) -> Any:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value if cls is str else cls(value)  # a str enum (TaskStatus): ValueError if unknown


def _strict_int(value: Any, cls: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value if cls is int else cls(value)


def _strict_float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _strict_bool(value: Any, _: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def configure_converter(converter: cattrs.Converter) -> None:
    """RFC 3339 UTC times (``2026-11-25T10:00:00Z``) both ways, and scalars read as
    they are: cattrs would coerce (``str(5) == "5"``, ``int("7") == 7``), and an
    answer of the wrong type is malformed, better reported than passed on as data."""
    converter.register_structure_hook(datetime, _parse_datetime)
    converter.register_unstructure_hook(datetime, format_datetime)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)


def _passthrough(value: Any, _: Any = None) -> Any:
    return value


def _raw_in(value: Any, _: Any = None) -> Any:
    """A raw (vector) value as read: the parser's float32 array as is, a list (the
    parser's slow path, or no NumPy) only if it holds numbers."""
    if hasattr(value, "dtype"):
        return value
    if not isinstance(value, list):
        raise TypeError(f"expected a list of numbers, got {type(value).__name__}")
    for item in value:
        if type(item) is not float and type(item) is not int:
            raise TypeError(f"expected a list of numbers, found {item!r}")
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
    float32 array in, the server's array out; a list in must hold numbers); ``order`` fixes the written key
    order where the wire's differs from the attribute order.
    """
    renames = renames or {}
    fields: dict[str, Any] = {
        name: override(
            rename=renames.get(name),
            struct_hook=_raw_in if name in raw else None,
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
