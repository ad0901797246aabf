"""Owner-only modes for what the server keeps on disk.

The data directory holds every tenant's vectors, file names and input URLs, so
it is ``0700`` and each file in it ``0600``. Modes are set with ``chmod``
after creation rather than trusted to ``mkdir``/``open`` with the process
umask, so a permissive umask (``0``) cannot widen them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make ``path`` itself owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing (never truncating) and make it owner-only.

    Used before SQLite opens its database: SQLite creates the ``-wal`` and
    ``-shm`` files with the database file's mode, so they follow.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
