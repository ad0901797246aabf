"""The backend seam: what turns decoded media into vectors.

The engine owns decoding and segmentation; a *backend* owns the vectors and the
models it serves (its :class:`~aioembed.engine.Catalogue`). A real model (a
CLIP-like image tower, an audio network) plugs in as a small module that
implements :class:`Backend`; :mod:`aioembed.engine._registry` says how one is
found by name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ._catalogue import Model

__all__ = ["Backend", "Vector", "mean_pool", "normalise"]

Vector = npt.NDArray[np.float32]


@runtime_checkable
class Backend(Protocol):
    """Turns decoded media into L2-normalised float32 vectors of ``model.dims``.

    Every method is synchronous, deterministic and must not keep references to
    its inputs. ``sample_fps`` and ``frame_size`` (width, height) tell the decoder
    what to hand to :meth:`visual`. A backend may also declare ``catalogue`` (a
    class attribute): the models it serves; without one it serves the contract's.
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
