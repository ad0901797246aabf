"""Which models a backend serves: names, dimensions, video options and what each option looks at.

Light on purpose (no NumPy, no PyAV): the server asks a backend's catalogue
which ``model_name`` values it accepts and which options a task gets, in its
own process, without loading the engine. The *wire* (which names the contract
admits at all) stays in :mod:`aioembed._params`, so the SDK can check names
without any of this installed.

A backend declares ``catalogue`` (a class attribute, so it is read without
building the backend); one that does not serves the contract's models,
:data:`CONTRACT_CATALOGUE`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from enum import StrEnum

import attrs

from .._params import MODELS

__all__ = ["CONTRACT_CATALOGUE", "Catalogue", "Model", "OptionKind", "catalogue_of"]


class OptionKind(StrEnum):
    """What media an embedding option describes, so the decoder knows what to decode."""

    VISUAL = "visual"
    AUDIO = "audio"


#: The kind of each option name the contract knows.
STANDARD_KINDS = {
    "visual-text": OptionKind.VISUAL,
    "visual": OptionKind.VISUAL,
    "audio": OptionKind.AUDIO,
}


@attrs.frozen
class Model:
    """A model a backend serves: ``dims`` and its video ``options`` in order, with
    ``kinds[i]`` the kind of ``options[i]`` (by default the contract's kinds)."""

    name: str
    dims: int
    options: tuple[str, ...]
    kinds: tuple[OptionKind, ...] = attrs.field()

    @kinds.default
    def _standard_kinds(self) -> tuple[OptionKind, ...]:
        return tuple(STANDARD_KINDS[o] for o in self.options)

    def kind(self, option: str) -> OptionKind:
        """The kind of a video option of this model; :class:`ValueError` if it has none such."""
        for name, kind in zip(self.options, self.kinds, strict=True):
            if name == option:
                return kind
        raise ValueError(
            f"model {self.name} has no option {option!r}; it has {', '.join(self.options)}"
        )

    def seed(self, purpose: str) -> int:
        """A stable 64-bit seed for ``purpose`` within this model (e.g. a projection)."""
        digest = hashlib.blake2b(f"{self.name}\x00{purpose}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


@attrs.frozen
class Catalogue:
    """The models one backend serves, by name, in a fixed order."""

    models: tuple[Model, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def get(self, name: str) -> Model:
        """The model called ``name``; :class:`KeyError` naming the known ones."""
        for model in self.models:
            if model.name == name:
                return model
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)


#: The contract's models (names, dims and options as the wire documents them).
CONTRACT_CATALOGUE = Catalogue(
    tuple(Model(m.name, m.dims, tuple(m.video_options)) for m in MODELS.values())
)


def catalogue_of(backend: object) -> Catalogue:
    """``backend.catalogue`` (a backend instance or factory), else the contract's."""
    found = getattr(backend, "catalogue", None)
    return found if isinstance(found, Catalogue) else CONTRACT_CATALOGUE
