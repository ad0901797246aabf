"""JSON <-> models: the one cattrs converter both ends use.

Wire names differ from attribute names in two places (``_id`` and ``float``);
unknown keys are tolerated so a newer server never breaks an older client.
Vectors are passed through as the parser's list: structuring 7,000 x 1,024
floats one by one would cost more than parsing them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .models import EmbedTask, Segment

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    orjson = None  # type: ignore[assignment]

__all__ = ["converter", "dumps", "format_datetime", "loads", "structure", "unstructure"]

T = TypeVar("T")

converter = cattrs.Converter(omit_if_default=False)


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, second precision, as the contract shows."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


converter.register_structure_hook(datetime, _parse_datetime)
converter.register_unstructure_hook(datetime, format_datetime)
converter.register_structure_hook(
    Segment,
    make_dict_structure_fn(
        Segment,
        converter,
        vector=override(rename="float", struct_hook=lambda v, _: v),
    ),
)
converter.register_unstructure_hook(
    Segment,
    make_dict_unstructure_fn(
        Segment,
        converter,
        vector=override(rename="float", unstruct_hook=lambda v: v),
        _cattrs_omit_if_default=True,
    ),
)
converter.register_structure_hook(
    EmbedTask, make_dict_structure_fn(EmbedTask, converter, id=override(rename="_id"))
)
converter.register_unstructure_hook(
    EmbedTask,
    make_dict_unstructure_fn(
        EmbedTask, converter, id=override(rename="_id"), _cattrs_omit_if_default=True
    ),
)


def structure(data: Any, cls: type[T]) -> T:
    """Wire JSON (already parsed) -> model; raises ``cattrs`` errors on a bad shape."""
    return converter.structure(data, cls)


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes; NumPy arrays are written natively when orjson is present."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(obj, separators=(",", ":"), default=_jsonable).encode()


def _jsonable(obj: Any) -> Any:
    tolist = getattr(obj, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
