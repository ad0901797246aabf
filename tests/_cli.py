"""Running the ``aioembed`` command as a subprocess, for the CLI suites."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 240
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioembed",
        *args,
        env={**os.environ, "COLUMNS": "200", **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
