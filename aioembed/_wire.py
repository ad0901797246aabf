"""JSON bytes <-> Python data, for every API version and both ends.

The codec only: which models a body maps to is each version's converter
(:mod:`aioembed.contract`). orjson and NumPy are used when installed (the
``fast`` extra); without them this is the standard library.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    orjson = None  # type: ignore[assignment]

# Imported with this module, not at the first response: importing NumPy takes
# 0.1-0.2 s, which would otherwise block the event loop inside the first request.
try:
    import numpy as np
except ImportError:  # pragma: no cover - NumPy is optional
    np = None  # type: ignore[assignment]

__all__ = [
    "dumps",
    "format_datetime",
    "loads",
    "loads_vectors",
]


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, second precision, as the contract shows."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        return orjson.loads(data)
    return json.loads(data)


#: Keys whose value is a vector: v1's ``float``, v2's ``embedding`` and ``embedding_uncertainty``.
VECTOR_KEYS = ("float", "embedding", "embedding_uncertainty")
#: A vector array as the contracts write it; numbers hold no ``]``, and a quote
#: inside a JSON string is always escaped, so this cannot match inside a string.
_VECTOR = re.compile(rb'"(float|embedding|embedding_uncertainty)"\s*:\s*\[([^\]]*)\]')


def loads_vectors(body: bytes) -> Any:
    """Parse a response, reading every vector array (:data:`VECTOR_KEYS`) straight into
    a float32 array.

    A 7,200-segment result holds 7.4 M numbers: as Python floats they take about
    225 MB, as float32 about 30 MB. Without NumPy, or if the body is not shaped as
    expected, this is plain :func:`loads`.
    """
    if np is None:  # pragma: no cover - NumPy is optional
        return loads(body)
    vectors = []
    for match in _VECTOR.finditer(body):
        text = match.group(2)
        if not text.strip():
            vectors.append(np.empty(0, dtype=np.float32))
            continue
        try:
            vector = np.fromstring(text, dtype=np.float32, sep=",")
        except (ValueError, DeprecationWarning):
            vector = None  # something other than plain numbers
        if vector is None or len(vector) != text.count(b",") + 1:
            return loads(body)  # the slow, sure path
        vectors.append(vector)
    if not vectors:
        return loads(body)
    data = loads(_VECTOR.sub(rb'"\1":[]', body))
    slots = _vector_slots(data)
    if len(slots) != len(vectors):
        return loads(body)
    for (slot, key), vector in zip(slots, vectors, strict=True):
        slot[key] = vector
    return data


def _vector_slots(node: Any) -> list[tuple[dict[str, Any], str]]:
    """(object, key) for every vector key holding a list, in document order (parsers
    keep key order, so a key's place among its siblings is its place in the text)."""
    found: list[tuple[dict[str, Any], str]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in VECTOR_KEYS and isinstance(value, list):
                    found.append((item, key))
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


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
