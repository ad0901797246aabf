"""A checked v2 request, defaults applied: what the validator returns and the server stores.

The wire body says what the caller typed; a spec says what will be done (the
model's default options, scopes and segmentation filled in, repeated values
counted once, ``local`` kept as sent). Specs are plain frozen values so the
server can store one as JSON and hand it to the engine unchanged.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs

__all__ = [
    "EmbedSpec",
    "MediaSpec",
    "MultiSource",
    "Segmentation",
    "Source",
    "TaskSpec",
    "TimedText",
    "spec_from_json",
    "spec_to_json",
]


@attrs.frozen
class Source:
    """Where the media is: ``kind`` is ``url``, ``base64_string`` or ``asset_id``."""

    kind: str
    value: str = attrs.field(repr=lambda v: v if len(v) <= 80 else f"<{len(v)} chars>")

    @property
    def decoded_size(self) -> int | None:
        """Bytes a ``base64_string`` decodes to (without decoding it); ``None`` otherwise."""
        if self.kind != "base64_string":
            return None
        return len(self.value) * 3 // 4 - self.value[-2:].count("=")


@attrs.frozen
class Segmentation:
    """``fixed`` with ``seconds`` = ``duration_sec``, or ``dynamic`` with ``min_duration_sec``."""

    strategy: str
    seconds: int


@attrs.frozen
class TimedText:
    start: float
    end: float
    text: str


@attrs.frozen
class MediaSpec:
    """One media input (video, audio, image, document) with its options resolved.

    ``end`` ``None`` means the end of the media. ``scopes`` keep ``local`` as sent
    (metadata echoes it; results answer ``clip``).
    """

    input_type: str
    source: Source
    start: float = 0.0
    end: float | None = None
    segmentation: Segmentation | None = None
    options: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    time_based_metadata: tuple[TimedText, ...] = ()
    #: Documents only: the ``segmentation`` object as sent (``spatial``/``sequential``).
    document_segmentation: dict[str, Any] | None = None


@attrs.frozen
class TaskSpec:
    """``POST /embed-v2/tasks`` after checking."""

    model_name: str
    media: MediaSpec
    embedding_dimension: int = 512
    embedding_uncertainty: bool = False

    @property
    def input_type(self) -> str:
        return self.media.input_type


@attrs.frozen
class MultiSource:
    media_type: str
    source: Source
    name: str | None = None


@attrs.frozen
class EmbedSpec:
    """``POST /embed-v2`` after checking: ``text`` for text/text_image/multi_input,
    ``media`` for image/text_image/audio/video, ``sources`` for multi_input."""

    model_name: str
    input_type: str
    text: str | None = None
    media: MediaSpec | None = None
    sources: tuple[MultiSource, ...] = ()
    embedding_dimension: int = 512
    embedding_uncertainty: bool = False
    auto_truncate: bool = False


_converter = cattrs.Converter()


def spec_to_json(spec: TaskSpec | EmbedSpec) -> dict[str, Any]:
    data: dict[str, Any] = _converter.unstructure(spec)
    return data


def spec_from_json(data: dict[str, Any], cls: type[TaskSpec | EmbedSpec]) -> Any:
    return _converter.structure(data, cls)
