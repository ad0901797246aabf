"""The building blocks every API version describes itself with.

Plain frozen values: a version module lists its operations, forms and query
parameters with these, and the client, the server and the OpenAPI generator all
read the same objects.
"""

from __future__ import annotations

from typing import Literal

import attrs

from .._params import unknown

__all__ = [
    "ApiVersion",
    "Field",
    "FormSpec",
    "Operation",
    "Param",
    "format_number",
]

#: How a value is written on the wire; drives the OpenAPI schema and the encoders.
Kind = Literal["text", "number", "integer", "uri", "file", "choice", "datetime"]


def format_number(value: float) -> str:
    """A number as a form field carries it: ``6`` for whole numbers, else ``repr``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@attrs.frozen
class Field:
    """One form field (or file part)."""

    name: str
    kind: Kind = "text"
    required: bool = False
    repeated: bool = False
    choices: tuple[str, ...] = ()
    description: str = ""


@attrs.frozen
class FormSpec:
    """The fields a ``multipart/form-data`` body may carry, in the order a client sends them."""

    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def files(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.kind == "file")

    @property
    def repeated(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.repeated)

    def check_name(self, name: str) -> None:
        """``400 parameter_unknown`` for a name this form does not have."""
        if name not in self.names:
            raise unknown(name)


@attrs.frozen
class Param:
    """A query, path or header parameter."""

    name: str
    kind: Kind = "text"
    where: Literal["query", "path", "header"] = "query"
    repeated: bool = False
    default: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    description: str = ""


@attrs.frozen
class Operation:
    """One route: ``name`` is the server's route name and the document's ``operationId``.

    ``response`` is the model the ``200`` body structures into (``None``: a free
    JSON object, for extensions with no model). ``public`` routes need no key.
    """

    name: str
    operation_id: str
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    summary: str
    response: type | None = None
    form: FormSpec | None = None
    params: tuple[Param, ...] = ()
    public: bool = False
    upload: bool = False
    not_found: bool = False

    @property
    def query(self) -> tuple[str, ...]:
        """Names of the query parameters this route accepts (anything else is unknown)."""
        return tuple(p.name for p in self.params if p.where == "query")


@attrs.frozen
class ApiVersion:
    """An API version: its prefix (``/v1.3``) and its operations, paths relative to it."""

    prefix: str
    title: str
    description: str
    operations: tuple[Operation, ...]

    def operation(self, name: str) -> Operation:
        for op in self.operations:
            if op.name == name:
                return op
        raise KeyError(name)
