"""A backend with its own model catalogue, for tests (``register()`` adds it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aioembed.engine import Catalogue, Model, register_backend

TINY = "test-tiny"


class TinyBackend:
    """Serves one model, ``tiny-1`` (8 dims), unknown to the wire contract."""

    name = TINY
    sample_fps = 1.0
    frame_size = (8, 8)
    catalogue = Catalogue((Model("tiny-1", 8, ("visual", "audio")),))

    def _axis(self, model: Model, i: int) -> Any:
        v = np.zeros(model.dims, np.float32)
        v[i] = 1.0
        return v

    def visual(self, frames: Any, times: Any, model: Model, option: str) -> Any:
        return self._axis(model, 0)

    def audio(self, samples: Any, model: Model, option: str) -> Any:
        return self._axis(model, 1)

    def text(self, text: str, model: Model) -> Any:
        return self._axis(model, 2)

    def pool(self, vectors: Any, weights: Any, model: Model, option: str) -> Any:
        return self._axis(model, 3)


def register() -> None:
    register_backend(TINY, TinyBackend, replace=True)

