"""An OpenAPI 3.1 document generated from an :class:`~._spec.ApiVersion`.

Paths come from its operations, request bodies from its form specs, and
response schemas from the attrs models themselves (with the converter's wire
names), so the document cannot drift from what both ends send.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from ._spec import ApiVersion, Field, FormSpec, Operation, Param

__all__ = ["openapi_document"]

_Schema = dict[str, Any]
_SCALARS: dict[Any, _Schema] = {
    str: {"type": "string"},
    float: {"type": "number"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    datetime: {"type": "string", "format": "date-time"},
}
_KINDS: dict[str, _Schema] = {
    "text": {"type": "string"},
    "number": {"type": "string", "description": "a number written as text, e.g. 6 or 12.5"},
    "integer": {"type": "integer"},
    "uri": {"type": "string", "format": "uri"},
    "file": {"type": "string", "format": "binary"},
    "choice": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
}
_ERRORS = {
    "400": "parameter_* or video_* error.",
    "401": "api_key_invalid.",
    "404": "resource_not_exist.",
    "413": "video_filesize_too_large.",
    "429": "too_many_requests; see Retry-After.",
    "500": "internal_error (a bug).",
}


def _ref(cls: type) -> _Schema:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


class _Schemas:
    """Collects a schema per attrs model reached from the operations."""

    def __init__(self, renames: Mapping[type, Mapping[str, str]]) -> None:
        self.renames = renames
        self.found: dict[str, _Schema] = {}

    def of_type(self, tp: Any) -> _Schema:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            real = [a for a in args if a is not type(None)]
            return self.of_type(real[0]) if len(real) == 1 else {}
        if origin in (list, tuple, Sequence) or tp in (list, Sequence):
            return {"type": "array", "items": self.of_type(args[0]) if args else {}}
        if origin is dict or tp is dict:
            return {"type": "object"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if attrs.has(tp):
            return self.model(tp)
        return dict(_SCALARS.get(tp, {}))

    def model(self, cls: type) -> _Schema:
        if cls.__name__ not in self.found:
            self.found[cls.__name__] = {}  # a placeholder first: models may nest
            hints = typing.get_type_hints(cls)
            renames = self.renames.get(cls, {})
            props: _Schema = {}
            required = []
            for a in attrs.fields(cls):
                if a.name.startswith("_"):
                    continue
                key = renames.get(a.name, a.name)
                props[key] = self.of_type(hints[a.name])
                if a.default is attrs.NOTHING:
                    required.append(key)
            schema: _Schema = {"type": "object", "properties": props}
            if required:
                schema["required"] = required
            if cls.__doc__:
                schema["description"] = cls.__doc__.strip().splitlines()[0]
            self.found[cls.__name__] = schema
        return _ref(cls)


def _field(field: Field, notes: Mapping[str, _Schema]) -> _Schema:
    schema = dict(_KINDS[field.kind])
    if field.choices:
        schema["enum"] = list(field.choices)
    if field.description:
        schema["description"] = field.description
    schema.update(notes.get(field.name, {}))
    return {"type": "array", "items": schema} if field.repeated else schema


def _form(form: FormSpec, notes: Mapping[str, _Schema]) -> _Schema:
    schema: _Schema = {
        "type": "object",
        "properties": {f.name: _field(f, notes) for f in form.fields},
    }
    required = [f.name for f in form.fields if f.required]
    if required:
        schema["required"] = required
    return schema


def _param(param: Param, notes: Mapping[str, _Schema]) -> _Schema:
    schema = dict(_KINDS[param.kind])
    for key, value in (
        ("minimum", param.minimum),
        ("maximum", param.maximum),
        ("default", param.default),
        ("maxLength", param.max_length),
        ("pattern", param.pattern),
    ):
        if value is not None:
            schema[key] = value
    if param.choices:
        schema["enum"] = list(param.choices)
    schema.update(notes.get(param.name, {}))
    out: _Schema = {"name": param.name, "in": param.where, "required": param.where == "path"}
    if param.description:
        out["description"] = param.description
    if param.repeated:
        out.update(schema={"type": "array", "items": schema}, style="form", explode=True)
    else:
        out["schema"] = schema
    return out


def _operation(op: Operation, schemas: _Schemas, notes: Mapping[str, _Schema]) -> _Schema:
    ok = schemas.model(op.response) if op.response is not None else {"type": "object"}
    responses: _Schema = {
        "200": {"description": "OK.", "content": {"application/json": {"schema": ok}}}
    }
    codes = [] if op.public else ["400", "401", "429", "500"]
    codes += ["404"] if op.not_found else []
    codes += ["413"] if op.upload else []
    for code in sorted(codes):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    out: _Schema = {"operationId": op.operation_id, "summary": op.summary}
    if op.public:
        out["security"] = []
    if op.params:
        out["parameters"] = [_param(p, notes) for p in op.params]
    if op.form is not None:
        name = f"{op.operation_id[0].upper()}{op.operation_id[1:]}Form"
        schemas.found[name] = _form(op.form, notes)
        content = {"multipart/form-data": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        out["requestBody"] = {"required": True, "content": content}
    out["responses"] = responses
    return out


def openapi_document(
    api: ApiVersion,
    *,
    title: str,
    version: str,
    description: str,
    error_model: type,
    renames: Mapping[type, Mapping[str, str]],
    notes: Mapping[str, _Schema] | None = None,
) -> dict[str, Any]:
    """The document for ``api``; ``notes`` add schema keywords to fields by name
    (a server's real limits and model names)."""
    schemas = _Schemas(renames)
    error_ref = schemas.model(error_model)
    paths: dict[str, _Schema] = {}
    for op in api.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, notes or {})
    responses = {
        f"E{code}": {"description": text, "content": {"application/json": {"schema": error_ref}}}
        for code, text in _ERRORS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": api.prefix}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "responses": responses,
            "schemas": schemas.found,
        },
    }
