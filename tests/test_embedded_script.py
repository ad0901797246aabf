"""A script that starts the server with ``create_app`` (issue 14, item 7).

Worker processes import the parent's ``__main__`` script again. Without an
``if __name__ == "__main__":`` guard that used to start a second server in
every worker: a valid video got ``400 video_file_broken`` and the log filled
with tracebacks. Now the first job answers ``500`` naming the fix (a task made
without a probe ends ``failed`` saying the same), the log has one line, and a
guarded script works.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START = """
    import sys
    from aiohttp import web
    from aioembed.server import ServerConfig, create_app

    probe = sys.argv[3] == "probe"
    config = ServerConfig(data_dir=sys.argv[1], api_keys=("k",), workers=1, probe_on_create=probe)
    web.run_app(create_app(config), host="127.0.0.1", port=int(sys.argv[2]), print=None)
"""
KEY = {"x-api-key": "k"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(tmp_path: Path, guarded: bool) -> Path:
    body = textwrap.dedent(START).strip()
    if guarded:
        lines = body.splitlines()
        head = [line for line in lines if line.startswith(("import", "from"))]
        rest = [line for line in lines if line not in head and line.strip()]
        body = "\n".join(head) + '\n\nif __name__ == "__main__":\n' + "\n".join(
            "    " + line for line in rest
        )
    path = tmp_path / ("guarded.py" if guarded else "unguarded.py")
    path.write_text(body + "\n")
    return path


async def _wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with http.get(f"{base}/health") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        assert time.monotonic() < deadline, "the script's server did not start"
        await asyncio.sleep(0.2)


async def _create(http: aiohttp.ClientSession, base: str, video: Path) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("model_name", "marengo3.0")
    form.add_field("video_file", video.read_bytes(), filename="v.mp4")
    async with http.post(f"{base}/v1.3/embed/tasks", data=form, headers=KEY) as r:
        return r.status, await r.json()


async def _task_end(http: aiohttp.ClientSession, base: str, task_id: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        async with http.get(f"{base}/v1.3/embed/tasks/{task_id}", headers=KEY) as r:
            body = await r.json()
        if body["status"] != "processing":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("guarded", "probe"),
    [(False, True), (False, False), (True, True)],
    ids=["unguarded", "unguarded-no-probe", "guarded"],
)
async def test_script_without_main_guard_fails_with_one_line(
    tmp_path: Path, video_factory: Any, http: aiohttp.ClientSession, guarded: bool, probe: bool
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    script = _script(tmp_path, guarded)
    args = [str(tmp_path / "data"), str(port), "probe" if probe else "no-probe"]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        await _wait_healthy(http, base)
        status, body = await _create(http, base, video_factory(duration=4.0))
        if guarded or not probe:
            assert status == 200 and body["_id"], body
            body = await _task_end(http, base, body["_id"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    if guarded:
        assert body["status"] == "ready", body
        return
    if probe:
        assert status == 500 and body["code"] == "internal_error", body
        message = body["message"]
    else:
        assert body["status"] == "failed" and body["error"]["code"] == "internal_error", body
        message = body["error"]["message"]
    assert 'if __name__ == "__main__":' in message, message
    assert str(script) in message, message
    assert "Traceback" not in text, text
    assert len(text.splitlines()) <= 2, text
