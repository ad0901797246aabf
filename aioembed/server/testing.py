"""Helpers for testing code against the local server.

:func:`register_test_backends` is meant for ``ServerConfig.worker_init`` (CLI
``--worker-init aioembed.server.testing:register_test_backends``): it registers
``"test-slow"``, the default backend slowed down by
``AIOEMBED_TEST_CLIP_DELAY`` seconds (default 0.2) per clip, so that a test can
observe a task mid-processing (progress, ``kill -9`` of the server or of a
worker) without generating long videos. Its vectors equal the default
backend's. It also registers ``"test-broken"``, whose text embedding raises (an
engine bug), so a test can see the server answer ``500 internal_error``.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["BROKEN_BACKEND", "SLOW_BACKEND", "register_test_backends"]

SLOW_BACKEND = "test-slow"
BROKEN_BACKEND = "test-broken"
WORKER_INIT = "aioembed.server.testing:register_test_backends"


def register_test_backends() -> None:
    """Register ``"test-slow"`` and ``"test-broken"`` in this process (idempotent)."""
    from ..engine import register_backend
    from ..engine._features import FeatureBackend

    delay = float(os.environ.get("AIOEMBED_TEST_CLIP_DELAY", "0.2"))

    class SlowBackend(FeatureBackend):
        def visual(self, *args: Any, **kwargs: Any) -> Any:
            time.sleep(delay)
            return super().visual(*args, **kwargs)

    class BrokenBackend(FeatureBackend):
        def text(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("test-broken: text embedding fails on purpose")

    register_backend(SLOW_BACKEND, SlowBackend, replace=True)
    register_backend(BROKEN_BACKEND, BrokenBackend, replace=True)
