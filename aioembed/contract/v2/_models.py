"""v2 response bodies as frozen attrs classes, and the converter both ends use for them.

The server renders every v2 answer by unstructuring these models and the SDK
parses them back with the same converter (:func:`make_converter`), so a field
the official SDK requires can only go missing in one place. Vectors
(``embedding``, ``embedding_uncertainty``) are float32 NumPy arrays when the
body was read with :func:`aioembed._wire.loads_vectors` (never Python floats);
every optional field has a default so a newer server's answers still parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ...models import PageInfo, TaskStatus
from .._convert import configure_converter

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AudioMetadata",
    "DocumentMetadata",
    "EmbedV2Response",
    "EmbeddingItem",
    "ImageMetadata",
    "MediaMetadata",
    "MultiInputMetadata",
    "TaskCreated",
    "TaskSummary",
    "TaskSummaryEmbedding",
    "Usage",
    "V2Task",
    "V2TaskError",
    "V2TaskPage",
    "VideoMetadata",
    "make_converter",
]

Vector = Sequence[float]


def _vec_repr(v: Vector | None) -> str:
    return "None" if v is None else f"<{len(v)} floats>"


@attrs.frozen
class EmbeddingItem:
    """One vector and what it covers. ``embedding_option``/``embedding_scope``/times are
    ``None`` for sync text, image, text_image and multi_input results."""

    embedding: Vector = attrs.field(repr=_vec_repr)
    embedding_uncertainty: Vector | None = attrs.field(default=None, repr=_vec_repr)
    embedding_option: str | None = None
    embedding_scope: str | None = None
    start_sec: float | None = None
    end_sec: float | None = None
    start_page_number: int | None = None
    end_page_number: int | None = None
    quadrant: str | None = None
    chunk_index: int | None = None

    def array(self) -> npt.NDArray[np.float32]:
        import numpy as np

        return np.asarray(self.embedding, dtype=np.float32)


@attrs.frozen
class Usage:
    input_tokens: dict[str, int]
    truncated: bool
    truncation_reason: str | None = None


@attrs.frozen(kw_only=True)
class VideoMetadata:
    input_type: str
    embedding_scopes: list[str]
    embedding_options: list[str]
    duration: float
    input_url: str | None = None
    input_filename: str | None = None
    clip_length: int | None = None
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_dimension: int | None = None


@attrs.frozen(kw_only=True)
class AudioMetadata:
    input_type: str
    embedding_options: list[str]
    embedding_scopes: list[str]
    duration: float
    input_url: str | None = None
    input_filename: str | None = None
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_dimension: int | None = None


@attrs.frozen(kw_only=True)
class ImageMetadata:
    """Image tasks; also sync ``image`` / ``text_image`` answers (``input_type`` says which)."""

    input_type: str
    input_url: str | None = None
    input_filename: str | None = None
    embedding_options: list[str] | None = None
    embedding_scopes: list[str] | None = None
    embedding_dimension: int | None = None


@attrs.frozen(kw_only=True)
class DocumentMetadata:
    input_type: str
    input_url: str | None = None
    input_filename: str | None = None
    embedding_options: list[str] | None = None
    embedding_scopes: list[str] | None = None
    embedding_dimension: int | None = None


@attrs.frozen(kw_only=True)
class MultiInputMetadata:
    input_type: str
    embedding_dimension: int | None = None


MediaMetadata = (
    VideoMetadata | AudioMetadata | ImageMetadata | DocumentMetadata | MultiInputMetadata
)
_METADATA: dict[str, type[Any]] = {
    "video": VideoMetadata,
    "audio": AudioMetadata,
    "image": ImageMetadata,
    "text_image": ImageMetadata,
    "document": DocumentMetadata,
    "multi_input": MultiInputMetadata,
}


class _Vectors:
    """``select``/``matrix`` over ``data``, shared by tasks and sync answers."""

    data: list[EmbeddingItem] | None

    def select(self, *, option: str | None = None, scope: str | None = None) -> list[EmbeddingItem]:
        """Items matching ``option`` and ``scope`` (``None`` matches any), in result order."""
        return [
            d
            for d in self.data or ()
            if (option is None or d.embedding_option == option)
            and (scope is None or d.embedding_scope == scope)
        ]

    def matrix(
        self, *, option: str | None = None, scope: str | None = None
    ) -> npt.NDArray[np.float32]:
        """The selected vectors as an ``(n, dims)`` float32 array (``(0, 0)`` if none)."""
        import numpy as np

        rows = [d.embedding for d in self.select(option=option, scope=scope)]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.array(rows, dtype=np.float32)


@attrs.frozen
class V2TaskError:
    message: str
    code: str | None = None


@attrs.frozen
class V2Task(_Vectors):
    """``GET /embed-v2/tasks/{id}``: status, and ``data`` once ``ready``."""

    id: str
    status: TaskStatus
    created_at: datetime | None = None
    updated_at: datetime | None = None
    data: list[EmbeddingItem] | None = None
    metadata: MediaMetadata | None = None
    usage: Usage | None = None
    error: V2TaskError | None = None


@attrs.frozen
class TaskCreatedMetadata:
    embedding_dimension: int | None = None


@attrs.frozen
class TaskCreated:
    """``POST /embed-v2/tasks``'s answer (always ``processing``)."""

    id: str
    status: TaskStatus  # no default: a default would be omitted, and the SDK requires it
    metadata: TaskCreatedMetadata | None = None


@attrs.frozen
class TaskSummaryEmbedding:
    metadata: dict[str, Any] | None = None


@attrs.frozen
class TaskSummary:
    """A list item: v1-shaped (``video_embedding.metadata`` with v1 names), no vectors;
    [ext] ``input_type`` and the v2 ``metadata``."""

    id: str
    status: TaskStatus
    model_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    video_embedding: TaskSummaryEmbedding | None = None
    audio_embedding: TaskSummaryEmbedding | None = None
    image_embedding: TaskSummaryEmbedding | None = None
    document_embedding: TaskSummaryEmbedding | None = None
    input_type: str | None = None
    metadata: MediaMetadata | None = None
    error: V2TaskError | None = None


@attrs.frozen
class V2TaskPage:
    data: list[TaskSummary]
    page_info: PageInfo | None = None


@attrs.frozen
class EmbedV2Response(_Vectors):
    """``POST /embed-v2``'s answer; ``metadata`` is absent for text."""

    data: list[EmbeddingItem]
    usage: Usage | None = None
    metadata: MediaMetadata | None = None

    def array(self) -> npt.NDArray[np.float32]:
        """The first (for text, image, text_image and multi_input, the only) vector."""
        return self.data[0].array()


_ALWAYS = ("embedding_option", "embedding_scope", "start_sec", "end_sec")
_IF_SET = ("start_page_number", "end_page_number", "quadrant", "chunk_index")


def _render_item(item: EmbeddingItem) -> dict[str, Any]:
    """Vectors as they are (orjson writes float32 arrays natively); the four fields the
    contract shows as ``null`` always, document fields only when set."""
    out: dict[str, Any] = {"embedding": item.embedding}
    if item.embedding_uncertainty is not None:
        out["embedding_uncertainty"] = item.embedding_uncertainty
    for key in _ALWAYS:
        out[key] = getattr(item, key)
    for key in _IF_SET:
        value = getattr(item, key)
        if value is not None:
            out[key] = value
    return out


def make_converter() -> cattrs.Converter:
    """A converter for the v2 models: ``_id`` renames, RFC 3339 times, vectors passed
    through untouched, metadata chosen by ``input_type``; ``None`` fields are omitted
    when rendering (the official SDK wants absent rather than ``null`` for ``error``)."""
    conv = cattrs.Converter(omit_if_default=False)
    configure_converter(conv)
    keep = override(struct_hook=lambda v, _: v)
    conv.register_structure_hook(
        EmbeddingItem,
        make_dict_structure_fn(EmbeddingItem, conv, embedding=keep, embedding_uncertainty=keep),
    )
    conv.register_unstructure_hook(EmbeddingItem, _render_item)

    def metadata(value: Any, _: Any) -> Any:
        if value is None:
            return None
        cls = _METADATA.get(str(value.get("input_type"))) if isinstance(value, dict) else None
        if cls is None:
            raise ValueError(f"metadata with an unknown input_type: {str(value)[:80]}")
        return conv.structure(value, cls)

    conv.register_unstructure_hook(TaskStatus, lambda v: v.value)
    for union in (MediaMetadata, MediaMetadata | None):
        conv.register_structure_hook(union, metadata)
        conv.register_unstructure_hook(union, lambda v: conv.unstructure(v, type(v)))
    # Leaves first: a class's generated hook binds its fields' hooks when it is made.
    leaves = (*_METADATA.values(), Usage, V2TaskError, TaskSummaryEmbedding, EmbedV2Response)
    for plain in leaves:
        conv.register_unstructure_hook(
            plain, make_dict_unstructure_fn(plain, conv, _cattrs_omit_if_default=True)
        )
    for cls in (V2Task, TaskCreated, TaskSummary):
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, id=override(rename="_id"))
        )
        conv.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(
                cls, conv, id=override(rename="_id"), _cattrs_omit_if_default=True
            ),
        )
    return conv


_CONVERTER = make_converter()


def converter() -> cattrs.Converter:
    """The shared instance of :func:`make_converter`."""
    return _CONVERTER
