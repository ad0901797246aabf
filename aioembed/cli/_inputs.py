"""Turning the command line's inputs (paths, directories, globs, URLs) into a list of videos.

Directories and recursive globs are walked with symlinks followed, so a linked
folder of videos is found, but every real directory is entered once: a symlink
loop (``a/loop -> ..``) ends the walk instead of hanging it, which
``glob.glob(recursive=True)`` would not do.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["VIDEO_SUFFIXES", "expand_inputs"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})


def expand_inputs(specs: Sequence[str]) -> list[str]:
    """Paths, directories (recursively, video suffixes only), globs and URLs, in order, once each.

    A path that does not exist is kept: it becomes a failed outcome naming it.
    """
    found: list[str] = []
    for spec in specs:
        if spec.lower().startswith(("http://", "https://")):
            found.append(spec)
        elif Path(spec).is_dir():
            found.extend(
                sorted(str(p) for p in _walk(Path(spec)) if p.suffix.lower() in VIDEO_SUFFIXES)
            )
        elif glob.has_magic(spec):
            found.extend(_glob(spec))
        else:
            found.append(spec)
    return list(dict.fromkeys(found))


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` in sorted order, each real directory visited once."""
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(top)
        if (st.st_dev, st.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        for name in sorted(files):
            path = Path(top, name)
            if path.is_file():
                yield path


def _glob(pattern: str) -> list[str]:
    """``glob.glob`` semantics (``**`` = any depth, wildcards skip dot-files), loop-safe."""
    if "**" not in pattern:
        return sorted(glob.glob(pattern))
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    wanted = parts[fixed:]
    matches = []
    for path in _walk(root):
        rel = path.relative_to(root).parts
        if _match(wanted, rel):
            matches.append(str(Path(*parts[:fixed], *rel)) if fixed else str(Path(*rel)))
    return sorted(matches)


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        # Zero directories, or one more (not a dot-directory) and try again.
        return _match(rest, parts) or (
            bool(parts) and not parts[0].startswith(".") and _match(pattern, parts[1:])
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])
