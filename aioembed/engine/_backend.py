"""The backend seam: what turns decoded media into vectors, and how one is found.

The engine owns decoding and segmentation; a *backend* owns the vectors. A real
model (a CLIP-like image tower, an audio network) plugs in as a small module that
implements :class:`Backend` and is either registered at runtime with
:func:`register_backend` or, so that it also exists in the server's worker
processes, advertised as an entry point::

    [project.entry-points."aioembed.backends"]
    my-clip = "my_package.backend:ClipBackend"   # a class or zero-argument factory

and selected by name (``backend="my-clip"`` on every engine function, or the
server's configuration). The default, ``"features"``, is the weights-free backend
in :mod:`aioembed.engine._features`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from .._params import MODELS

__all__ = [
    "DEFAULT_BACKEND",
    "ENTRY_POINT_GROUP",
    "Backend",
    "Model",
    "available_backends",
    "get_backend",
    "get_model",
    "register_backend",
]

ENTRY_POINT_GROUP = "aioembed.backends"
DEFAULT_BACKEND = "features"

Vector = npt.NDArray[np.float32]

# Which kind of media an embedding option describes.
_OPTION_KINDS = {"visual-text": "visual", "visual": "visual", "audio": "audio"}


@attrs.frozen
class Model:
    """A model name as the contract knows it: ``dims`` and video ``options`` in order."""

    name: str
    dims: int
    options: tuple[str, ...]

    def kind(self, option: str) -> str:
        """``"visual"`` or ``"audio"`` for a video option of this model."""
        if option not in self.options:
            raise ValueError(
                f"model {self.name} has no option {option!r}; it has {', '.join(self.options)}"
            )
        return _OPTION_KINDS[option]

    def seed(self, purpose: str) -> int:
        """A stable 64-bit seed for ``purpose`` within this model (e.g. a projection)."""
        digest = hashlib.blake2b(f"{self.name}\x00{purpose}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")


def get_model(name: str) -> Model:
    """The model called ``name``; raises :class:`KeyError` naming the known ones."""
    info = MODELS.get(name)
    if info is None:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return Model(info.name, info.dims, tuple(info.video_options))


@runtime_checkable
class Backend(Protocol):
    """Turns decoded media into L2-normalised float32 vectors of ``model.dims``.

    Every method is synchronous, deterministic and must not keep references to
    its inputs. ``sample_fps`` and ``frame_size`` (width, height) tell the decoder
    what to hand to :meth:`visual`.
    """

    name: str
    sample_fps: float
    frame_size: tuple[int, int]

    def visual(
        self,
        frames: npt.NDArray[np.uint8],
        times: npt.NDArray[np.float64],
        model: Model,
        option: str,
    ) -> Vector:
        """A clip's sampled frames ``(n, h, w, 3)`` RGB (``n >= 1``) and their times in
        seconds. A still image is a clip of one frame, so it lands in the same space."""
        ...

    def audio(self, samples: npt.NDArray[np.float32], model: Model, option: str) -> Vector:
        """Mono float32 samples at 16 kHz; empty or silent gives the backend's silence vector."""
        ...

    def text(self, text: str, model: Model) -> Vector:
        """A text query's vector."""
        ...

    def pool(
        self,
        vectors: npt.NDArray[np.float32],
        weights: npt.NDArray[np.float64],
        model: Model,
        option: str,
    ) -> Vector:
        """The ``video``-scope vector from the clips' ``(n, dims)`` vectors and durations."""
        ...


BackendFactory = Callable[[], Backend]

_lock = threading.Lock()
_factories: dict[str, BackendFactory] = {}
_instances: dict[str, Backend] = {}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Make ``factory()`` available as backend ``name`` in this process.

    Raises :class:`ValueError` if ``name`` is taken and ``replace`` is false.
    (Worker processes do not inherit runtime registrations: ship an entry point.)
    """
    with _lock:
        if name in _factories and not replace:
            raise ValueError(f"backend {name!r} is already registered")
        _factories[name] = factory
        _instances.pop(name, None)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_backends() -> list[str]:
    """Names of registered and entry-point backends, sorted."""
    _ensure_builtin()
    with _lock:
        names = set(_factories)
    return sorted(names | set(_entry_points()))


def get_backend(name: str | None = None) -> Backend:
    """The (cached) backend called ``name`` (default :data:`DEFAULT_BACKEND`).

    Looks at runtime registrations first, then the ``aioembed.backends`` entry
    points. Raises :class:`KeyError` for an unknown name and :class:`TypeError` if
    the factory's result does not implement :class:`Backend`.
    """
    name = name or DEFAULT_BACKEND
    _ensure_builtin()
    with _lock:
        cached = _instances.get(name)
        if cached is not None:
            return cached
        factory = _factories.get(name)
    if factory is None:
        ep = _entry_points().get(name)
        if ep is None:
            raise KeyError(
                f"unknown backend {name!r}; available: {', '.join(available_backends())}"
            )
        factory = ep.load()
    backend = factory()
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {name!r} does not implement aioembed.engine.Backend")
    with _lock:
        return _instances.setdefault(name, backend)


def _ensure_builtin() -> None:
    if DEFAULT_BACKEND in _factories:
        return
    from ._features import FeatureBackend

    with _lock:
        _factories.setdefault(DEFAULT_BACKEND, FeatureBackend)


def normalise(v: npt.NDArray[np.float64]) -> Vector:
    """``v / |v|`` as float32; a zero vector stays zero (callers avoid producing one)."""
    norm = float(np.sqrt(np.sum(v * v)))
    out = v / norm if norm > 0 else v
    return out.astype(np.float32)


def mean_pool(vectors: npt.NDArray[np.float32], weights: npt.NDArray[np.float64]) -> Vector:
    """Duration-weighted mean of unit vectors, renormalised (a default :meth:`Backend.pool`)."""
    w = np.asarray(weights, np.float64)
    acc = np.zeros(vectors.shape[1], np.float64)
    # An explicit loop keeps the summation order fixed (bit-identical everywhere).
    for row, weight in zip(vectors.astype(np.float64), w, strict=True):
        acc += weight * row
    return normalise(acc)
