"""The contract's data, as frozen attrs classes shared by client and server.

Field names are Pythonic (``id``, ``vector``); each API version's converter
(:mod:`aioembed.contract`) maps them
to the wire names (``_id``, ``float``). Every field the server may omit has a
default, so a response from a newer server with fewer or extra keys still parses.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "EmbedResponse",
    "EmbedTask",
    "EmbeddingScope",
    "MediaEmbedding",
    "PageInfo",
    "Segment",
    "TaskError",
    "TaskPage",
    "TaskProgress",
    "TaskStatus",
    "VideoEmbedding",
    "VideoMetadata",
]


class TaskStatus(str, enum.Enum):
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self is not TaskStatus.PROCESSING

    def __str__(self) -> str:
        return self.value


class EmbeddingScope(str, enum.Enum):
    CLIP = "clip"
    VIDEO = "video"

    def __str__(self) -> str:
        return self.value


def _as_array(values: Sequence[float]) -> npt.NDArray[np.float32]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - exercised only without numpy
        raise ImportError("vector arrays need NumPy: pip install numpy") from None
    return np.asarray(values, dtype=np.float32)


@attrs.frozen
class Segment:
    """One embedding vector and the span of media it describes.

    ``vector`` is a float32 NumPy array when NumPy is installed (parsed straight
    from the response, never as Python floats), a list of floats otherwise;
    :meth:`array` always gives the float32 array.
    """

    vector: Sequence[float] = attrs.field(repr=lambda v: f"<{len(v)} floats>")
    start_offset_sec: float | None = None
    end_offset_sec: float | None = None
    embedding_scope: str | None = None
    embedding_option: str | None = None

    def array(self) -> npt.NDArray[np.float32]:
        return _as_array(self.vector)


@attrs.frozen
class VideoMetadata:
    input_url: str | None = None
    input_filename: str | None = None
    video_clip_length: float | None = None
    video_embedding_scope: list[str] | None = None
    video_embedding_option: list[str] | None = None
    duration: float | None = None


@attrs.frozen
class VideoEmbedding:
    metadata: VideoMetadata | None = None
    segments: list[Segment] | None = None

    def select(self, *, option: str | None = None, scope: str | None = None) -> list[Segment]:
        """Segments matching ``option`` and ``scope`` (``None`` matches any)."""
        return [
            s
            for s in self.segments or ()
            if (option is None or s.embedding_option == option)
            and (scope is None or s.embedding_scope == scope)
        ]

    def matrix(
        self, *, option: str | None = None, scope: str | None = None
    ) -> npt.NDArray[np.float32]:
        """The selected vectors stacked as an ``(n, dims)`` float32 array, in segment order."""
        import numpy as np

        rows = [s.vector for s in self.select(option=option, scope=scope)]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.array(rows, dtype=np.float32)


@attrs.frozen
class TaskError:
    """[ext] Why a task failed."""

    code: str
    message: str


@attrs.frozen
class TaskProgress:
    """[ext] Clips embedded so far, while ``processing``."""

    clips_done: int
    clips_total: int


@attrs.frozen
class EmbedTask:
    """A video embedding task as status, retrieve and list describe it.

    ``video_embedding.segments`` is set only by retrieve on a ``ready`` task.
    """

    id: str
    status: TaskStatus
    model_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    video_embedding: VideoEmbedding | None = None
    error: TaskError | None = None
    progress: TaskProgress | None = None

    @property
    def metadata(self) -> VideoMetadata | None:
        return self.video_embedding.metadata if self.video_embedding else None

    @property
    def segments(self) -> list[Segment]:
        return list(self.video_embedding.segments or ()) if self.video_embedding else []


@attrs.frozen
class PageInfo:
    limit_per_page: int
    page: int
    total_page: int
    total_results: int


@attrs.frozen
class TaskPage:
    data: list[EmbedTask]
    page_info: PageInfo | None = None


@attrs.frozen
class MediaEmbedding:
    """The result for one input of ``POST /embed`` (text, image or audio)."""

    segments: list[Segment] = attrs.Factory(list)
    metadata: dict[str, Any] | None = None

    def array(self) -> npt.NDArray[np.float32]:
        """The first (for text and image, the only) vector as float32."""
        return self.segments[0].array()


@attrs.frozen
class EmbedResponse:
    model_name: str
    text_embedding: MediaEmbedding | None = None
    image_embedding: MediaEmbedding | None = None
    audio_embedding: MediaEmbedding | None = None

    @property
    def embedding(self) -> MediaEmbedding:
        """Whichever of the three the request asked for."""
        for e in (self.text_embedding, self.image_embedding, self.audio_embedding):
            if e is not None:
                return e
        raise ValueError("response carries no embedding")
