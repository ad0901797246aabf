"""Typed v2 inputs and the wire bodies they render to, per model.

``VideoInput(MediaSource.url("https://…/a.mp4"), segmentation=Fixed(6))`` says
what to embed; :func:`task_body` / :func:`embed_body` turn it into the JSON the
model expects (marengo3.5 wraps segmentation in ``temporal``). Rendering never
judges a value: the body then goes through the one validator both ends share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ._enums import MediaType, ModelName

__all__ = [
    "AudioInput",
    "DocumentInput",
    "Dynamic",
    "EmbedInput",
    "Fixed",
    "ImageInput",
    "MediaSource",
    "MultiInput",
    "MultiSource",
    "Segmentation",
    "TaskInput",
    "TextImageInput",
    "TextInput",
    "TimeBasedMetadata",
    "VideoInput",
    "embed_body",
    "task_body",
]


@attrs.frozen
class MediaSource:
    """Exactly one place the media comes from; build it with a class method.

    ``url`` (a direct http(s) link), ``base64`` (raw base64 text, or bytes that are
    encoded for you), ``asset`` (a ``ready`` asset's id), or ``file`` (a local
    path: the SDK sends it as base64 when small enough).
    """

    kind: str
    value: str = attrs.field(repr=lambda v: v if len(v) <= 80 else f"<{len(v)} chars>")

    @classmethod
    def url(cls, url: str) -> MediaSource:
        return cls("url", url)

    @classmethod
    def base64(cls, data: str | bytes) -> MediaSource:
        if isinstance(data, bytes):
            import base64

            data = base64.b64encode(data).decode("ascii")
        return cls("base64_string", data)

    @classmethod
    def asset(cls, asset_id: str) -> MediaSource:
        return cls("asset_id", asset_id)

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> MediaSource:
        return cls("file", os.fspath(path))

    @property
    def path(self) -> Path | None:
        return Path(self.value) if self.kind == "file" else None

    def render(self) -> dict[str, Any]:
        if self.kind == "file":
            raise ValueError("a local file must be read before rendering (the client does this)")
        return {self.kind: self.value}


@attrs.frozen
class Fixed:
    """Segments of ``duration_sec`` seconds (an integer, 2-10)."""

    duration_sec: int

    def render(self) -> dict[str, Any]:
        return {"strategy": "fixed", "fixed": {"duration_sec": self.duration_sec}}


@attrs.frozen
class Dynamic:
    """Segments at shot boundaries, each at least ``min_duration_sec`` (an integer, 2-5)."""

    min_duration_sec: int

    def render(self) -> dict[str, Any]:
        return {"strategy": "dynamic", "dynamic": {"min_duration_sec": self.min_duration_sec}}


Segmentation = Fixed | Dynamic
Values = Sequence[str] | None


@attrs.frozen
class TimeBasedMetadata:
    """Your time-aligned text, folded into the fused vectors of the segments it overlaps."""

    start: float
    end: float
    text: str


def _values(values: Values) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


@attrs.frozen(kw_only=True)
class _Temporal:
    source: MediaSource = attrs.field(kw_only=False)
    start_sec: float | None = None
    end_sec: float | None = None
    segmentation: Segmentation | None = None
    embedding_option: Values = None
    embedding_scope: Values = None
    embedding_type: Values = None
    time_based_metadata: Sequence[TimeBasedMetadata] | None = None

    def render(self, model: str, *, sync: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"media_source": self.source.render()}
        if self.start_sec is not None:
            body["start_sec"] = self.start_sec
        if self.end_sec is not None:
            body["end_sec"] = self.end_sec
        if self.segmentation is not None:
            seg = self.segmentation.render()
            body["segmentation"] = {"temporal": seg} if model == ModelName.MARENGO_3_5 else seg
        for key in ("embedding_option", "embedding_scope", "embedding_type"):
            values = _values(getattr(self, key))
            if values is not None:
                body[key] = values
        if self.time_based_metadata is not None:
            body["time_based_metadata"] = [attrs.asdict(t) for t in self.time_based_metadata]
        return body


@attrs.frozen(kw_only=True)
class VideoInput(_Temporal):
    """A video: ``VideoInput(MediaSource.url(...), segmentation=Dynamic(4), ...)``.

    Options are :class:`EmbeddingOption` values (``visual``, ``audio``,
    ``transcription`` on 3.0), scopes :class:`EmbeddingScope` (``clip``,
    ``local``, ``asset``), types :class:`EmbeddingType`. ``None`` leaves the
    model's default.
    """

    input_type = "video"


@attrs.frozen(kw_only=True)
class AudioInput(_Temporal):
    """An audio file; as :class:`VideoInput` (3.0 segments audio with ``Fixed`` only)."""

    input_type = "audio"


@attrs.frozen(kw_only=True)
class ImageInput:
    """An image (tasks: marengo3.5; sync embed: marengo3.0)."""

    source: MediaSource = attrs.field(kw_only=False)
    embedding_option: Values = None
    embedding_scope: Values = None
    embedding_type: Values = None
    input_type = "image"

    def render(self, model: str, *, sync: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"media_source": self.source.render()}
        if not sync:
            for key in ("embedding_option", "embedding_scope", "embedding_type"):
                values = _values(getattr(self, key))
                if values is not None:
                    body[key] = values
        return body


@attrs.frozen(kw_only=True)
class DocumentInput:
    """A PDF, .txt or .md file (marengo3.5). ``segmentation`` is the wire object
    (``{"spatial": {"strategy": "quadrants"}}``). Our local server refuses documents."""

    source: MediaSource = attrs.field(kw_only=False)
    segmentation: dict[str, Any] | None = None
    embedding_option: Values = None
    embedding_scope: Values = None
    embedding_type: Values = None
    input_type = "document"

    def render(self, model: str, *, sync: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"media_source": self.source.render()}
        if self.segmentation is not None:
            body["segmentation"] = self.segmentation
        for key in ("embedding_option", "embedding_scope", "embedding_type"):
            values = _values(getattr(self, key))
            if values is not None:
                body[key] = values
        return body


@attrs.frozen
class TextInput:
    """Text for ``POST /embed-v2`` (marengo3.0; on 3.5 use :class:`MultiInput`)."""

    input_text: str
    input_type = "text"

    def render(self, model: str, *, sync: bool = True) -> dict[str, Any]:
        return {"input_text": self.input_text}


@attrs.frozen
class TextImageInput:
    """Text and an image combined into one vector (marengo3.0)."""

    source: MediaSource
    input_text: str
    input_type = "text_image"

    def render(self, model: str, *, sync: bool = True) -> dict[str, Any]:
        return {"media_source": self.source.render(), "input_text": self.input_text}


@attrs.frozen
class MultiSource:
    """One ``multi_input`` source; ``name`` is what ``<@name>`` in the text refers to."""

    media_type: MediaType | str
    source: MediaSource
    name: str | None = None

    def render(self) -> dict[str, Any]:
        body: dict[str, Any] = {"media_type": str(self.media_type), **self.source.render()}
        if self.name is not None:
            body["name"] = self.name
        return body


@attrs.frozen
class MultiInput:
    """Text and up to 10 sources combined into one vector (3.5; 3.0 takes images only)."""

    input_text: str | None = None
    media_sources: Sequence[MultiSource] = ()
    input_type = "multi_input"

    def render(self, model: str, *, sync: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.input_text is not None:
            body["input_text"] = self.input_text
        if self.media_sources:
            body["media_sources"] = [s.render() for s in self.media_sources]
        return body


TaskInput = VideoInput | AudioInput | ImageInput | DocumentInput
EmbedInput = TextInput | ImageInput | TextImageInput | AudioInput | VideoInput | MultiInput


def _top(
    model: str, input_type: str, dimension: int | None, uncertainty: bool | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input_type": input_type, "model_name": str(model)}
    if dimension is not None:
        body["embedding_dimension"] = dimension
    if uncertainty is not None:
        body["embedding_uncertainty"] = uncertainty
    return body


def task_body(
    model: ModelName | str,
    item: TaskInput,
    *,
    embedding_dimension: int | None = None,
    embedding_uncertainty: bool | None = None,
) -> dict[str, Any]:
    """The ``POST /embed-v2/tasks`` JSON for ``item`` under ``model``."""
    body = _top(str(model), item.input_type, embedding_dimension, embedding_uncertainty)
    body[item.input_type] = item.render(str(model), sync=False)
    return body


def embed_body(
    model: ModelName | str,
    item: EmbedInput,
    *,
    embedding_dimension: int | None = None,
    embedding_uncertainty: bool | None = None,
    auto_truncate: bool | None = None,
) -> dict[str, Any]:
    """The ``POST /embed-v2`` JSON for ``item`` under ``model``."""
    body = _top(str(model), item.input_type, embedding_dimension, embedding_uncertainty)
    if auto_truncate is not None:
        body["auto_truncate"] = auto_truncate
    body[item.input_type] = item.render(str(model), sync=True)
    return body
