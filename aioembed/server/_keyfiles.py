"""API keys from files, and the generated key kept in the data directory.

Keys passed as ``--api-key K`` show in ``ps`` to every local user; a key file
(``--api-key-file``) or the environment does not. A key ``serve`` generates is
written to ``DATA_DIR/api.key`` (0600) and reused on the next start, so tasks
(which belong to a key) stay reachable after a restart.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

__all__ = ["generated_key", "read_key_files"]

KEY_FILE = "api.key"


def read_key_files(paths: Iterable[str]) -> list[str]:
    """Keys from files, one per line; blank lines and ``#`` comments skipped.

    Raises ``ValueError`` naming a file that cannot be read or holds no key.
    """
    keys: list[str] = []
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise ValueError(f"cannot read API key file {path}: {e.strerror}") from None
        found = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not found:
            raise ValueError(f"API key file {path} holds no key")
        keys.extend(found)
    return keys


def generated_key(data_dir: str | os.PathLike[str]) -> tuple[str, Path, bool]:
    """The key kept in ``data_dir``, made (0600, in a 0700 directory) if missing.

    Returns ``(key, path, created)``.
    """
    path = Path(data_dir) / KEY_FILE
    try:
        key = path.read_text().strip()
        if key:
            return key, path, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = "aioembed-" + secrets.token_hex(16)
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)
    return key, path, True
