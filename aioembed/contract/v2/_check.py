"""The v2 request rules, written once for both ends (as :mod:`aioembed._params` is for v1).

:func:`check_task_body` and :func:`check_embed_body` take a parsed JSON body.
The client runs them on the body it is about to send, the server on the body it
received, so a bad request fails with the same ``code``, message and JSON path
(``details.parameter``) whichever side catches it. Passes run in the contract's
precedence: unknown keys at any depth (``parameter_unknown``), then missing
required fields (``parameter_not_provided``), then bad values and combinations
(``parameter_invalid``), then decoded base64 sizes (``413 content_too_large``).
``null`` means absent everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import ErrorCode, ParameterError, PayloadTooLargeError
from ._enums import EmbeddingType, InputType, MediaType, ModelName
from ._spec import EmbedSpec, MediaSpec, MultiSource, Segmentation, Source, TaskSpec, TimedText

__all__ = [
    "MAX_DIMENSION",
    "V2Limits",
    "check_embed_body",
    "check_task_body",
    "count_tokens",
    "invalid",
    "not_provided",
    "too_large",
    "unknown",
]

MAX_DIMENSION = 512
MB = 1024 * 1024
_ASSET_ID = re.compile(r"[0-9a-f]{24}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_MENTION = re.compile(r"<@([^>]*)>")
M30, M35 = ModelName.MARENGO_3_0.value, ModelName.MARENGO_3_5.value


@attrs.frozen
class V2Limits:
    """Size and count limits the validator enforces (inclusive); a server may change them."""

    base64_media_bytes: int = 36 * MB
    image_bytes: int = 32 * MB
    multi_source_bytes: int = 32 * MB
    max_sources: int = 10
    text_tokens_30: int = 500
    text_tokens_35: int = 2000


def count_tokens(text: str) -> int:
    """Tokens as the local engine counts them: words and single punctuation marks."""
    return len(_TOKEN.findall(text))


# -- errors -------------------------------------------------------------------------------


def unknown(path: str) -> ParameterError:
    shown = path if len(path) <= 64 else path[:61] + "..."
    return ParameterError(
        f"The {shown!r} parameter is unknown. Check the parameter name.",
        code=ErrorCode.PARAMETER_UNKNOWN,
        parameter=shown,
    )


def not_provided(path: str) -> ParameterError:
    return ParameterError(
        f"The {path} parameter is required but was not provided.",
        code=ErrorCode.PARAMETER_NOT_PROVIDED,
        parameter=path,
    )


def invalid(path: str, rule: str) -> ParameterError:
    return ParameterError(f"The {path} parameter is invalid. {rule}", parameter=path)


def too_large(path: str, size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"File size ({size / MB:.1f} MB) exceeds maximum limit of {limit // MB} MB.",
        code=ErrorCode.CONTENT_TOO_LARGE,
        details={"parameter": path},
    )


# -- pass 1: unknown keys -----------------------------------------------------------------

Schema = Mapping[str, Any]  # key -> None (scalar), a Schema (object) or a 1-tuple (list of)
_SOURCE: Schema = {"url": None, "base64_string": None, "asset_id": None}
_SEG_INNER: Schema = {
    "strategy": None,
    "dynamic": {"min_duration_sec": None},
    "fixed": {"duration_sec": None},
}
_SEG: Schema = {**_SEG_INNER, "temporal": _SEG_INNER}
_AV_SYNC: Schema = {
    "media_source": _SOURCE,
    "start_sec": None,
    "end_sec": None,
    "segmentation": _SEG,
    "embedding_option": None,
    "embedding_scope": None,
    "embedding_type": None,
}
_AV: Schema = {**_AV_SYNC, "time_based_metadata": ({"start": None, "end": None, "text": None},)}
_DOC_SEG: Schema = {
    "spatial": {"strategy": None},
    "sequential": {"strategy": None, "max_sentences": None, "overlap_sentences": None},
}
_OPTS: Schema = {"embedding_option": None, "embedding_scope": None, "embedding_type": None}
TASK_SCHEMA: Schema = {
    "input_type": None,
    "model_name": None,
    "embedding_dimension": None,
    "embedding_uncertainty": None,
    "video": _AV,
    "audio": _AV,
    "image": {"media_source": _SOURCE, **_OPTS},
    "document": {"media_source": _SOURCE, "segmentation": _DOC_SEG, **_OPTS},
}
EMBED_SCHEMA: Schema = {
    "input_type": None,
    "model_name": None,
    "auto_truncate": None,
    "embedding_uncertainty": None,
    "embedding_dimension": None,
    "text": {"input_text": None},
    "image": {"media_source": _SOURCE},
    "text_image": {"media_source": _SOURCE, "input_text": None},
    "audio": _AV_SYNC,
    "video": _AV_SYNC,
    "multi_input": {
        "input_text": None,
        "media_sources": ({"name": None, "media_type": None, **_SOURCE},),
    },
}


def _check_unknown(value: Any, schema: Any, path: str) -> None:
    if isinstance(schema, tuple):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _check_unknown(item, schema[0], f"{path}[{i}]")
        return
    if not isinstance(schema, Mapping) or not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            raise unknown(where)
        _check_unknown(item, schema[key], where)


# -- small readers ------------------------------------------------------------------------


def _get(obj: Any, key: str) -> Any:
    """``obj[key]``, with a missing key and ``null`` both ``None`` (null means absent)."""
    return obj.get(key) if isinstance(obj, dict) else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path, f"{path} should be an object.")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(path, f"{path} should be a number.")
    if not math.isfinite(value):
        raise invalid(path, f"{path} should be a finite number.")
    return float(value)


def _integer(value: Any, path: str, lo: int, hi: int) -> int:
    """A JSON integer (``6.0`` reads as 6; ``6.5`` is refused) within ``[lo, hi]``."""
    number = _number(value, path)
    if not number.is_integer():
        raise invalid(path, f"{path} should be an integer.")
    if not lo <= number <= hi:
        raise invalid(path, f"{path} should be an integer between {lo} and {hi}.")
    return int(number)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(path, f"{path} should be true or false.")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(path, f"{path} should be a non-empty string.")
    return value


def _choices(
    value: Any, path: str, allowed: tuple[str, ...], default: tuple[str, ...], why: str = ""
) -> tuple[str, ...]:
    """A list of enum values, repeats counted once; absent -> ``default``."""
    if value is None:
        return default
    if not isinstance(value, list):
        raise invalid(path, f"{path} should be a list.")
    if not value:
        raise invalid(path, f"{path} should not be empty.")
    for item in value:
        if not isinstance(item, str) or item not in allowed:
            raise invalid(path, f"{path} values should be {_either(allowed)}{why}.")
    return tuple(dict.fromkeys(value))


def _either(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _source(obj: dict[str, Any], path: str) -> Source:
    """Exactly one of ``url``, ``base64_string``, ``asset_id`` in ``obj``."""
    given = [k for k in ("url", "base64_string", "asset_id") if _get(obj, k) is not None]
    if len(given) != 1:
        raise invalid(path, f"{path} should have exactly one of url, base64_string or asset_id.")
    kind = given[0]
    where = _join(path, kind)
    value = obj[kind]
    if not isinstance(value, str) or not value:
        raise invalid(where, f"{where} should be a non-empty string.")
    if kind == "url" and not value.lower().startswith(("http://", "https://")):
        raise invalid(where, f"{where} should be an http or https URL.")
    if kind == "base64_string":
        if value.startswith("data:"):
            raise invalid(where, f"{where} should be raw base64, without a data: prefix.")
        if len(value) % 4 or not _BASE64.fullmatch(value):
            raise invalid(where, f"{where} should be valid base64.")
    if kind == "asset_id" and not _ASSET_ID.fullmatch(value):
        raise invalid(where, f"{where} should be an asset id of 24 hex characters.")
    return Source(kind, value)


# -- pass 2: required fields --------------------------------------------------------------


def _require(body: dict[str, Any], kinds: tuple[str, ...]) -> None:
    for key in ("input_type", "model_name"):
        if _get(body, key) is None:
            raise not_provided(key)
    input_type = body["input_type"]
    if not isinstance(input_type, str) or input_type not in kinds:
        return  # refused as invalid in the next pass
    obj = _get(body, input_type)
    if obj is None:
        raise not_provided(input_type)
    if not isinstance(obj, dict):
        return
    if input_type == InputType.MULTI_INPUT:
        _require_multi(obj)
        return
    if input_type != InputType.TEXT and _get(obj, "media_source") is None:
        raise not_provided(f"{input_type}.media_source")
    if input_type in (InputType.TEXT, InputType.TEXT_IMAGE) and _get(obj, "input_text") is None:
        raise not_provided(f"{input_type}.input_text")
    _require_segmentation(_get(obj, "segmentation"), f"{input_type}.segmentation")
    entries = _get(obj, "time_based_metadata")
    for i, entry in enumerate(entries if isinstance(entries, list) else ()):
        for key in ("start", "end", "text"):
            if isinstance(entry, dict) and _get(entry, key) is None:
                raise not_provided(f"{input_type}.time_based_metadata[{i}].{key}")


def _require_segmentation(seg: Any, path: str) -> None:
    if not isinstance(seg, dict) or path.startswith("document"):
        return
    if _get(seg, "temporal") is not None:
        seg, path = seg["temporal"], f"{path}.temporal"
        if not isinstance(seg, dict):
            return
    strategy = _get(seg, "strategy")
    if strategy is None:
        raise not_provided(f"{path}.strategy")
    if strategy not in ("fixed", "dynamic"):
        return
    inner = _get(seg, strategy)
    if inner is None:
        raise not_provided(f"{path}.{strategy}")
    field = "duration_sec" if strategy == "fixed" else "min_duration_sec"
    if isinstance(inner, dict) and _get(inner, field) is None:
        raise not_provided(f"{path}.{strategy}.{field}")


def _require_multi(obj: dict[str, Any]) -> None:
    if _get(obj, "input_text") is None and _get(obj, "media_sources") is None:
        raise not_provided("multi_input.media_sources")
    sources = _get(obj, "media_sources")
    for i, src in enumerate(sources if isinstance(sources, list) else ()):
        if isinstance(src, dict) and _get(src, "media_type") is None:
            raise not_provided(f"multi_input.media_sources[{i}].media_type")


# -- pass 3: values -----------------------------------------------------------------------


def _top(
    body: dict[str, Any], kinds: tuple[str, ...], models_for: Mapping[str, tuple[str, ...]]
) -> tuple[str, str, int, bool]:
    """(input_type, model_name, embedding_dimension, embedding_uncertainty)."""
    input_type = body["input_type"]
    if not isinstance(input_type, str) or input_type not in kinds:
        raise invalid("input_type", f"input_type should be {_either(kinds)}.")
    model = body["model_name"]
    if not isinstance(model, str) or model not in (M30, M35):
        raise invalid("model_name", f"model_name should be {_either((M30, M35))}.")
    if model not in models_for[input_type]:
        raise invalid("input_type", f"input_type '{input_type}' is not supported by {model}.")
    for other in kinds:
        if other != input_type and _get(body, other) is not None:
            raise invalid(other, f"{other} should not be sent when input_type is '{input_type}'.")
    dimension = MAX_DIMENSION
    if _get(body, "embedding_dimension") is not None:
        if model == M30:
            raise invalid("embedding_dimension", "embedding_dimension requires marengo3.5.")
        dimension = _integer(body["embedding_dimension"], "embedding_dimension", 1, MAX_DIMENSION)
    uncertainty = False
    if _get(body, "embedding_uncertainty") is not None:
        uncertainty = _bool(body["embedding_uncertainty"], "embedding_uncertainty")
        if model == M30:
            raise invalid("embedding_uncertainty", "embedding_uncertainty requires marengo3.5.")
    return input_type, model, dimension, uncertainty


#: (model, input_type) -> (options allowed, default options)
_OPTIONS = {
    (M30, "video"): (("visual", "audio", "transcription"), ("visual", "audio", "transcription")),
    (M35, "video"): (("visual", "audio"), ("visual", "audio")),
    (M30, "audio"): (("audio", "transcription"), ("audio", "transcription")),
    (M35, "audio"): (("audio",), ("audio",)),
}
_SCOPES = ("clip", "local", "asset")
_TYPES = (EmbeddingType.SEPARATE.value, EmbeddingType.FUSED.value)


def _segmentation(value: Any, path: str, model: str, input_type: str) -> Segmentation:
    """The model's shape (3.5 wraps it in ``temporal``), strategy and its one sub-object."""
    fixed_only = model == M30 and input_type == "audio"
    if value is None:
        if fixed_only:
            return Segmentation("fixed", 6)
        return Segmentation("dynamic", 4 if model == M30 else 2)
    seg = _object(value, path)
    present = {k for k, v in seg.items() if v is not None}
    if model == M35:
        if present != {"temporal"}:
            raise invalid(path, f'{path} should be {{"temporal": {{...}}}} for marengo3.5.')
        seg, path = _object(seg["temporal"], f"{path}.temporal"), f"{path}.temporal"
    elif "temporal" in present:
        raise invalid(path, f"{path} should not use temporal with marengo3.0.")
    strategies = ("fixed",) if fixed_only else ("fixed", "dynamic")
    strategy = seg["strategy"]
    if strategy not in strategies:
        raise invalid(f"{path}.strategy", f"{path}.strategy should be {_either(strategies)}.")
    other = "dynamic" if strategy == "fixed" else "fixed"
    if _get(seg, other) is not None:
        raise invalid(path, f"{path} should hold only the {strategy} object its strategy names.")
    inner = _object(seg[strategy], f"{path}.{strategy}")
    if strategy == "fixed":
        where = f"{path}.fixed.duration_sec"
        return Segmentation("fixed", _integer(inner["duration_sec"], where, 2, 10))
    where = f"{path}.dynamic.min_duration_sec"
    return Segmentation("dynamic", _integer(inner["min_duration_sec"], where, 2, 5))


def _media(obj: dict[str, Any], input_type: str, model: str, *, sync: bool) -> MediaSpec:
    """A video or audio object: range, segmentation, options, scopes, types, metadata."""
    p = input_type
    source = _source(_object(obj["media_source"], f"{p}.media_source"), f"{p}.media_source")
    start = 0.0
    if _get(obj, "start_sec") is not None:
        start = _number(obj["start_sec"], f"{p}.start_sec")
        if start < 0:
            raise invalid(f"{p}.start_sec", f"{p}.start_sec should be 0 or greater.")
    end = None
    if _get(obj, "end_sec") is not None:
        end = _number(obj["end_sec"], f"{p}.end_sec")
        if end <= start:
            raise invalid(f"{p}.end_sec", f"{p}.end_sec should be greater than {p}.start_sec.")
    seg = _segmentation(_get(obj, "segmentation"), f"{p}.segmentation", model, p)
    allowed, default = _OPTIONS[(model, p)]
    why = f" for {model} {p}"
    options = _choices(
        _get(obj, "embedding_option"), f"{p}.embedding_option", allowed, default, why
    )
    scopes_ok = ("clip", "asset") if sync else _SCOPES
    scopes = _choices(
        _get(obj, "embedding_scope"), f"{p}.embedding_scope", scopes_ok, ("clip", "asset")
    )
    types = _choices(_get(obj, "embedding_type"), f"{p}.embedding_type", _TYPES, _TYPES[:1])
    timed = _timed(_get(obj, "time_based_metadata"), f"{p}.time_based_metadata", model, types)
    if EmbeddingType.FUSED in types:
        if len(options) < 2:
            raise invalid(
                f"{p}.embedding_type",
                f"{p}.embedding_type fused_embedding needs at least two embedding_option values.",
            )
        if model == M35 and not timed:
            raise invalid(
                f"{p}.embedding_type",
                f"{p}.embedding_type fused_embedding needs time_based_metadata with marengo3.5.",
            )
    return MediaSpec(p, source, start, end, seg, options, scopes, types, timed)


def _timed(value: Any, path: str, model: str, types: tuple[str, ...]) -> tuple[TimedText, ...]:
    if value is None:
        return ()
    if model == M30:
        raise invalid(path, f"{path} requires marengo3.5.")
    if not isinstance(value, list) or not value:
        raise invalid(path, f"{path} should be a non-empty list.")
    if EmbeddingType.FUSED not in types:
        raise invalid(path, f"{path} needs fused_embedding in embedding_type.")
    out = []
    for i, entry in enumerate(value):
        where = f"{path}[{i}]"
        entry = _object(entry, where)
        start = _number(entry["start"], f"{where}.start")
        end = _number(entry["end"], f"{where}.end")
        if not 0 <= start <= end:
            raise invalid(where, f"{where} should have 0 <= start <= end.")
        out.append(TimedText(start, end, _text(entry["text"], f"{where}.text")))
    return tuple(out)


def _image(obj: dict[str, Any]) -> MediaSpec:
    source = _source(_object(obj["media_source"], "image.media_source"), "image.media_source")
    options = _choices(
        _get(obj, "embedding_option"), "image.embedding_option", ("visual",), ("visual",)
    )
    scopes = _choices(_get(obj, "embedding_scope"), "image.embedding_scope", ("asset",), ("asset",))
    types = _choices(_get(obj, "embedding_type"), "image.embedding_type", _TYPES[:1], _TYPES[:1])
    return MediaSpec("image", source, options=options, scopes=scopes, types=types)


def _document(obj: dict[str, Any]) -> MediaSpec:
    p = "document"
    source = _source(_object(obj["media_source"], f"{p}.media_source"), f"{p}.media_source")
    options = _choices(
        _get(obj, "embedding_option"), f"{p}.embedding_option", ("visual", "text"), ()
    )
    scopes = _choices(_get(obj, "embedding_scope"), f"{p}.embedding_scope", ("local", "asset"), ())
    types = _choices(_get(obj, "embedding_type"), f"{p}.embedding_type", _TYPES[:1], _TYPES[:1])
    seg = _get(obj, "segmentation")
    if seg is not None:
        seg = _object(seg, f"{p}.segmentation")
        if len([k for k in ("spatial", "sequential") if _get(seg, k) is not None]) != 1:
            raise invalid(f"{p}.segmentation", f"{p}.segmentation should be spatial or sequential.")
    return MediaSpec(
        p, source, options=options, scopes=scopes, types=types, document_segmentation=seg
    )


# -- pass 4: sizes --------------------------------------------------------------------------


def _check_size(source: Source, path: str, limit: int) -> None:
    size = source.decoded_size
    if size is not None and size > limit:
        raise too_large(f"{path}.base64_string", size, limit)


# -- entry points ---------------------------------------------------------------------------

TASK_INPUTS = ("video", "audio", "image", "document")
_TASK_MODELS = {"video": (M30, M35), "audio": (M30, M35), "image": (M35,), "document": (M35,)}


def check_task_body(body: Any, limits: V2Limits = V2Limits()) -> TaskSpec:
    """Check a ``POST /embed-v2/tasks`` body; raises ``ParameterError`` or
    ``PayloadTooLargeError`` (``content_too_large``) naming the JSON path."""
    if not isinstance(body, dict):
        raise invalid("body", "The request body should be a JSON object.")
    _check_unknown(body, TASK_SCHEMA, "")
    _require(body, TASK_INPUTS)
    input_type, model, dimension, uncertainty = _top(body, TASK_INPUTS, _TASK_MODELS)
    obj = _object(body[input_type], input_type)
    if input_type == "image":
        media = _image(obj)
    elif input_type == "document":
        media = _document(obj)
        if uncertainty:
            raise invalid(
                "embedding_uncertainty", "embedding_uncertainty does not apply to documents."
            )
    else:
        media = _media(obj, input_type, model, sync=False)
        if uncertainty and "asset" in media.scopes:
            raise invalid(
                "embedding_uncertainty",
                f"embedding_uncertainty needs {input_type}.embedding_scope without 'asset'.",
            )
    limit = limits.image_bytes if input_type == "image" else limits.base64_media_bytes
    _check_size(media.source, f"{input_type}.media_source", limit)
    return TaskSpec(model, media, dimension, uncertainty)


EMBED_INPUTS = ("text", "image", "text_image", "audio", "video", "multi_input")
_EMBED_MODELS = {k: (M30,) for k in EMBED_INPUTS} | {"multi_input": (M30, M35)}


def check_embed_body(body: Any, limits: V2Limits = V2Limits()) -> EmbedSpec:
    """Check a ``POST /embed-v2`` body; raises as :func:`check_task_body`."""
    if not isinstance(body, dict):
        raise invalid("body", "The request body should be a JSON object.")
    _check_unknown(body, EMBED_SCHEMA, "")
    _require(body, EMBED_INPUTS)
    input_type, model, dimension, uncertainty = _top(body, EMBED_INPUTS, _EMBED_MODELS)
    auto_truncate = False
    if _get(body, "auto_truncate") is not None:
        auto_truncate = _bool(body["auto_truncate"], "auto_truncate")
        if model == M30:
            raise invalid("auto_truncate", "auto_truncate requires marengo3.5.")
    obj = _object(body[input_type], input_type)
    spec = EmbedSpec(
        model,
        input_type,
        embedding_dimension=dimension,
        embedding_uncertainty=uncertainty,
        auto_truncate=auto_truncate,
    )
    if input_type == "multi_input":
        return _multi(obj, spec, limits)
    text = media = None
    if input_type in ("text", "text_image"):
        text = _text(obj["input_text"], f"{input_type}.input_text")
        _check_tokens(text, f"{input_type}.input_text", limits.text_tokens_30)
    if input_type in ("image", "text_image"):
        path = f"{input_type}.media_source"
        media = MediaSpec("image", _source(_object(obj["media_source"], path), path))
        _check_size(media.source, path, limits.image_bytes)
    elif input_type in ("audio", "video"):
        media = _media(obj, input_type, model, sync=True)
        _check_size(media.source, f"{input_type}.media_source", limits.base64_media_bytes)
    return attrs.evolve(spec, text=text, media=media)


def _check_tokens(text: str, path: str, limit: int) -> None:
    tokens = count_tokens(text)
    if tokens > limit:
        raise invalid(path, f"{path} is {tokens} tokens; the limit is {limit}.")


def _multi(obj: dict[str, Any], spec: EmbedSpec, limits: V2Limits) -> EmbedSpec:
    p = "multi_input"
    text = None
    if _get(obj, "input_text") is not None:
        text = _text(obj["input_text"], f"{p}.input_text")
        if spec.model_name == M30 or not spec.auto_truncate:
            limit = limits.text_tokens_30 if spec.model_name == M30 else limits.text_tokens_35
            _check_tokens(text, f"{p}.input_text", limit)
    raw = _get(obj, "media_sources")
    sources: list[MultiSource] = []
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise invalid(f"{p}.media_sources", f"{p}.media_sources should be a non-empty list.")
        if len(raw) > limits.max_sources:
            raise invalid(
                f"{p}.media_sources", f"{p}.media_sources should hold at most {limits.max_sources}."
            )
        for i, item in enumerate(raw):
            sources.append(_multi_source(item, f"{p}.media_sources[{i}]", spec.model_name))
    _check_mentions(text, sources)
    if len({s.media_type for s in sources}) > 1 and text is None:
        raise invalid(
            f"{p}.input_text", f"{p}.input_text is required for sources of different types."
        )
    if spec.embedding_uncertainty and (text is not None and sources):
        raise invalid(
            "embedding_uncertainty", "embedding_uncertainty needs text only or media only."
        )
    if spec.embedding_uncertainty and any(s.media_type == "document" for s in sources):
        raise invalid("embedding_uncertainty", "embedding_uncertainty does not apply to documents.")
    for i, source in enumerate(sources):
        _check_size(source.source, f"{p}.media_sources[{i}]", limits.multi_source_bytes)
    return attrs.evolve(spec, text=text, sources=tuple(sources))


def _multi_source(item: Any, path: str, model: str) -> MultiSource:
    obj = _object(item, path)
    kinds = tuple(m.value for m in MediaType)
    media_type = obj["media_type"]
    if media_type not in kinds:
        raise invalid(f"{path}.media_type", f"{path}.media_type should be {_either(kinds)}.")
    if model == M30 and media_type != "image":
        raise invalid(f"{path}.media_type", f"{path}.media_type should be 'image' for marengo3.0.")
    name = _get(obj, "name")
    if name is not None:
        name = _text(name, f"{path}.name")
    return MultiSource(media_type, _source(obj, path), name)


def _check_mentions(text: str | None, sources: list[MultiSource]) -> None:
    names = [s.name for s in sources if s.name is not None]
    if len(set(names)) != len(names):
        raise invalid("multi_input.media_sources", "media source names should be unique.")
    for mention in _MENTION.findall(text or ""):
        if mention not in names:
            raise invalid(
                "multi_input.input_text",
                f"multi_input.input_text names <@{mention[:40]}>, which no media source has.",
            )
