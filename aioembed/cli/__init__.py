"""The ``aioembed`` command line (``pip install 'aioembed[cli]'``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

_EXTRAS = {"rich", "numpy", "platformdirs", "pyarrow", "av"}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from ._main import main as run
    except ImportError as e:
        if e.name not in _EXTRAS:
            raise
        print(
            f"aioembed: the command line needs the [cli] extra ({e.name} is missing): "
            "pip install 'aioembed[cli]'",
            file=sys.stderr,
        )
        return 2
    return run(argv)
