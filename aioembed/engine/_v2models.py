"""The Embed API v2 models: what each may embed, its defaults, and 3.5's nested vectors.

``marengo3.0`` and ``marengo3.5`` both answer 512 L2-normalised values from the
same backend seam as v1 (``Backend.visual/audio/text/pool``; a model's projection
is seeded by its name, so the two are distinct spaces). ``marengo3.0``'s vectors
are the v1 ``marengo3.0`` ones.

``marengo3.5`` is *nested*: ``embedding_dimension: d`` answers the first ``d``
values of the 512, not renormalised, so every prefix must be a meaningful
embedding on its own. :func:`nest` rotates a 3.5 visual or audio vector so its
dimensions come by decreasing information (see its docstring); text is hashed
in blocks of doubling size (64, 64, 128, 256 values, each an independent hashed
n-gram embedding) so that every prefix of 64, 128 or 256 values is a complete
hashed embedding.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from ._backend import Backend, normalise
from ._catalogue import Model

__all__ = [
    "DIMS",
    "V2_MODELS",
    "InputKind",
    "Option",
    "V2Model",
    "cut",
    "fuse",
    "get_v2_model",
    "nest",
    "spread",
    "v2_text",
]

DIMS = 512
Vector = npt.NDArray[np.float32]


class InputKind(enum.StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    IMAGE = "image"


class Option(enum.StrEnum):
    """An embedding option; ``FUSED`` is the option name of fused items."""

    VISUAL = "visual"
    AUDIO = "audio"
    TRANSCRIPTION = "transcription"
    FUSED = "fused"


@attrs.frozen
class V2Model:
    """A v2 model: its options per input kind (the first tuple is the default
    selection), default segmentation per kind (``("fixed"|"dynamic", seconds)``)
    and whether its vectors are nested."""

    name: str
    options: dict[InputKind, tuple[Option, ...]]
    default_segmentation: dict[InputKind, tuple[str, float]]
    nested: bool

    @property
    def backend_model(self) -> Model:
        """The :class:`Model` the backend is asked for (512 values, visual and audio)."""
        return Model(self.name, DIMS, ("visual", "audio"))


_VIDEO = (Option.VISUAL, Option.AUDIO)
V2_MODELS: dict[str, V2Model] = {
    m.name: m
    for m in (
        V2Model(
            "marengo3.0",
            {
                InputKind.VIDEO: (*_VIDEO, Option.TRANSCRIPTION),
                InputKind.AUDIO: (Option.AUDIO, Option.TRANSCRIPTION),
                InputKind.IMAGE: (Option.VISUAL,),
            },
            {InputKind.VIDEO: ("dynamic", 4.0), InputKind.AUDIO: ("fixed", 6.0)},
            nested=False,
        ),
        V2Model(
            "marengo3.5",
            {
                InputKind.VIDEO: _VIDEO,
                InputKind.AUDIO: (Option.AUDIO,),
                InputKind.IMAGE: (Option.VISUAL,),
            },
            {InputKind.VIDEO: ("dynamic", 2.0), InputKind.AUDIO: ("dynamic", 2.0)},
            nested=True,
        ),
    )
}


def get_v2_model(name: str) -> V2Model:
    """The v2 model called ``name``; :class:`KeyError` naming the known ones."""
    model = V2_MODELS.get(name)
    if model is None:
        raise KeyError(f"unknown v2 model {name!r}; known: {', '.join(V2_MODELS)}")
    return model


@functools.cache
def _reflections(option: str) -> tuple[npt.NDArray[np.float64], ...]:
    with resources.files(__package__).joinpath("_nesting.npz").open("rb") as f:
        stored = np.load(f)[option].astype(np.float64)
    # Renormalised in float64: each reflection is then exactly orthogonal.
    return tuple(w / np.sqrt(np.einsum("i,i->", w, w)) for w in stored)


def nest(vector: Vector, model: V2Model, option: Option) -> Vector:
    """``vector`` with its dimensions ordered by decreasing information (nested
    models; others get ``vector`` back).

    A fixed rotation (``tools/fit_nesting.py``: principal directions of the
    default backend's visual and audio vectors on generated videos, stored as
    Householder reflections) brings the directions that carry most of a
    vector's length to the first values; the rest of the space follows in a
    fixed order. Being a rotation, it keeps 512-value cosines and unit length
    exactly (to float32 rounding), whichever backend made the vector.
    """
    if not model.nested:
        return vector
    y = vector.astype(np.float64)
    for w in _reflections(option.value):
        # einsum without optimisation: no BLAS, so the same bits on every machine.
        y -= 2.0 * np.einsum("i,i->", w, y) * w
    out: Vector = y.astype(np.float32)
    return out


_TEXT_BLOCKS = (64, 64, 128, 256)


def v2_text(backend: Backend, text: str, model: V2Model) -> Vector:
    """A text vector of ``model`` (512 values, unit length; nested for 3.5)."""
    base = model.backend_model
    if not model.nested:
        return backend.text(text, base)
    parts = []
    for i, size in enumerate(_TEXT_BLOCKS):
        block = backend.text(text, Model(f"{model.name}/text{i}", size, base.options))
        # Each block weighs its share of the 512 values: the whole stays unit length.
        parts.append(block.astype(np.float64) * np.sqrt(size / DIMS))
    return normalise(np.concatenate(parts))


def fuse(vectors: Iterable[npt.NDArray[np.floating[Any]]]) -> Vector:
    """``L2-normalise(sum of vectors)``: fused items, ``text_image`` and ``multi_input``.

    Raises :class:`ValueError` for no vectors.
    """
    rows = [np.asarray(v, np.float64) for v in vectors]
    if not rows:
        raise ValueError("fuse needs at least one vector")
    acc = np.zeros(rows[0].shape[0], np.float64)
    for row in rows:  # a fixed summation order: bit-identical results
        acc += row
    return normalise(acc)


def cut(vector: Vector, dimension: int) -> Vector:
    """The first ``dimension`` values (a nested model's answer), contiguous float32."""
    return np.ascontiguousarray(vector[:dimension], np.float32)


def spread(vectors: Sequence[Vector]) -> Vector:
    """Per-dimension standard deviation over ``vectors`` (zeros for one)."""
    if len(vectors) < 2:
        return np.zeros(DIMS, np.float32)
    out: Vector = np.std(np.stack(vectors).astype(np.float64), axis=0).astype(np.float32)
    return out
