"""Batch tier 1: one big batch split over several client processes or machines.

``aioembed embed INPUTS --shard i/N --out part-i.parquet`` keeps the inputs whose
key falls in shard ``i`` of ``N`` (1-based): the key is the input as written after
expansion (a path as given, or a URL), hashed with SHA-256, so every machine
running the same command with the same inputs agrees on who embeds what, with no
coordination. Each shard has its own journal and output part, uses ``1/N`` of the
default concurrency (so ``N`` shards together stay near one client's rate), and
writes a manifest beside its part (``PART.manifest.json``: the shard, its keys,
which failed and why, and the export's provenance). ``aioembed merge`` joins the
parts and lists the keys that are missing or failed (:mod:`._merge`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = ["MANIFEST_SUFFIX", "Shard", "manifest_path", "recorded", "write_manifest"]

MANIFEST_SUFFIX = ".manifest.json"
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@attrs.frozen
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``; ``ValueError`` unless ``1 <= i <= N``."""
        m = _SPEC.fullmatch(text)
        if m is None:
            raise ValueError(f"--shard should look like 2/4 (shard 2 of 4), got {text!r}")
        index, count = int(m.group(1)), int(m.group(2))
        if not 1 <= index <= count:
            raise ValueError(f"--shard {text}: the shard number should be 1 to {count}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def select(self, keys: Sequence[str]) -> list[str]:
        """The keys of this shard, in their order."""
        return [k for k in keys if self.owns(k)]

    def share(self, concurrency: int) -> int:
        """This shard's part of ``concurrency`` (at least 1)."""
        return max(1, concurrency // self.count)


def recorded(key: str) -> str:
    """How an export's ``input`` column names ``key``: a URL as given, a path absolute."""
    if key.lower().startswith(("http://", "https://")):
        return key
    return str(Path(key).absolute())


def manifest_path(part: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(part)}{MANIFEST_SUFFIX}")


def write_manifest(
    part: str | os.PathLike[str],
    shard: Shard,
    *,
    keys: Iterable[str],
    failed: Mapping[str, str],
    provenance: Mapping[str, str],
) -> Path:
    """The shard's manifest beside its ``part`` (written atomically)."""
    path = manifest_path(part)
    body = {
        "shard": str(shard),
        "keys": [recorded(k) for k in keys],
        "failed": {recorded(k): why for k, why in failed.items()},
        "provenance": dict(provenance),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path
