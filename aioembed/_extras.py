"""Optional dependencies: one clear message naming the extra when one is missing."""

from __future__ import annotations

__all__ = ["OPTIONAL", "extra_missing"]

#: Modules that come with an extra, not with the SDK core.
OPTIONAL = frozenset(
    {"numpy", "av", "orjson", "platformdirs", "rich", "pyarrow", "asyncpg", "aiobotocore"}
)


def extra_missing(what: str, extra: str, error: ImportError) -> ImportError:
    """The error to raise for ``error``: one naming the extra when an optional module is
    missing (``name`` kept, so callers can still tell which), else ``error`` itself."""
    if error.name not in OPTIONAL:
        return error
    return ImportError(
        f"{what} needs the [{extra}] extra ({error.name} is not installed): "
        f"pip install 'aioembed[{extra}]'",
        name=error.name,
    )
