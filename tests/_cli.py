"""Running the ``aioembed`` command as a subprocess, for the CLI suites."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
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


async def kill_cli_after(
    *args: str, env: dict[str, str], created: Callable[[], int], count: int, cwd: Path | None = None
) -> None:
    """Run ``aioembed *args`` quietly and SIGKILL it once ``created()`` (the server's task
    creates) reaches ``count``: a batch cut short mid-way, for the resume tests."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioembed",
        *args,
        env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=cwd,
    )
    while created() < count:
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
