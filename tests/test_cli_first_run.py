"""The command line as a new user meets it: help, finding a server, the embedded server shared
by concurrent commands, keys kept safely, the files it leaves behind."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aioembed.samples import retag

from _cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
NO_SERVER = {"AIOEMBED_BASE_URL": "", "AIOEMBED_API_KEY": "", "TWELVELABS_API_KEY": ""}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aioembed", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100", **(env or {})},
        timeout=60,
    )


# -- item 12: version and help ---------------------------------------------------------------


def test_version_and_help_say_what_they_should() -> None:
    from aioembed import __version__

    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"aioembed {__version__}"
    top = _cli("--help").stdout
    assert "``" not in top and "AIOEMBED_BASE_URL" in top
    for command in ("embed", "status", "list", "retrieve"):
        text = " ".join(_cli(command, "--help").stdout.split())
        assert "$AIOEMBED_BASE_URL" in text and "$TWELVELABS_API_KEY" in text, command
        assert "embedded local server" in text, command
    embed = " ".join(_cli("embed", "--help").stdout.split())
    assert "Marengo-retrieval-2.7: 1024-d, options visual-text, audio" in embed
    assert "marengo3.0: 512-d, options visual, audio" in embed
    assert "(default Marengo-retrieval-2.7)" in embed and "(default clip)" in embed
    assert "2-10 (default 6)" in embed
    assert "always on the embedded local server" in " ".join(_cli("demo", "--help").stdout.split()).lower()


# -- item 6: one rule for finding the server ----------------------------------------------------


def test_the_cli_finds_its_server_as_from_env_does() -> None:
    from aioembed import AsyncClient
    from aioembed.cli._embedded import configured
    from aioembed.cli._errors import UsageError

    assert configured({}) is None  # the embedded server
    only_key = configured({"TWELVELABS_API_KEY": "tlk"})
    assert only_key is not None and only_key.base_url == "https://api.twelvelabs.io/v1.3"
    both = configured({"AIOEMBED_BASE_URL": "http://127.0.0.1:9/v1.3", "AIOEMBED_API_KEY": "k"})
    assert both is not None and (both.base_url, both.api_key) == ("http://127.0.0.1:9/v1.3", "k")
    with pytest.raises(UsageError, match="AIOEMBED_BASE_URL is set"):
        configured({"AIOEMBED_BASE_URL": "http://127.0.0.1:9/v1.3"})
    # The SDK agrees on every case it can build a client for.
    for env in ({"TWELVELABS_API_KEY": "tlk"}, {"AIOEMBED_BASE_URL": "http://h/v1.3", "AIOEMBED_API_KEY": "k"}):
        saved = {k: os.environ.pop(k, None) for k in ("AIOEMBED_BASE_URL", "AIOEMBED_API_KEY", "TWELVELABS_API_KEY")}
        os.environ.update(env)
        try:
            chosen = configured(os.environ)
            assert chosen is not None and AsyncClient.from_env().base_url == chosen.base_url
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v


def test_base_url_without_a_key_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _cli("status", "0" * 24, env={**NO_SERVER, "AIOEMBED_BASE_URL": "http://127.0.0.1:9/v1.3"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "AIOEMBED_BASE_URL is set" in result.stderr


# -- item 4: concurrent commands share the embedded server --------------------------------------


async def test_concurrent_commands_share_the_embedded_server_and_the_last_stops_it(
    tmp_path: Path, video_factory: Any
) -> None:
    cache = tmp_path / "cache"
    env = {**NO_SERVER, "AIOEMBED_DATA_DIR": str(cache)}
    base = video_factory(duration=5, fps=5, seed=41)
    videos = [retag(base, tmp_path / f"s{i}.mp4", f"s{i}") for i in range(3)]
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioembed", "embed", *map(str, videos), "--concurrency", "1",
        env={**os.environ, **env}, cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    state = cache / "server" / "embedded.json"
    for _ in range(600):
        if state.exists() or owner.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert state.exists(), "the owner did not publish its server"
    url = json.loads(state.read_text())["url"]

    # A second command while the first runs: it uses that server (no "in use" error).
    code, stdout, stderr = await run_cli("list", env=env, cwd=tmp_path)
    assert code == 0, stderr

    # Hold a guest's share, as a third command would: the owner must not stop under it.
    users = os.open(cache / "server" / "embedded.users.lock", os.O_RDWR)
    try:
        fcntl.flock(users, fcntl.LOCK_SH)
        assert owner.stderr is not None
        waiting = b""
        while b"it stops when the last one ends" not in waiting:
            line = await asyncio.wait_for(owner.stderr.readline(), 120)
            assert line, "the owner ended without waiting for its guest"
            waiting += line
        assert owner.returncode is None and state.exists()
        code, stdout, _ = await run_cli("list", env=env, cwd=tmp_path)
        assert code == 0 and stdout.count("ready") == 3  # still served, same tasks
    finally:
        os.close(users)  # the last user leaves
    out, _ = await asyncio.wait_for(owner.communicate(), 60)
    assert owner.returncode == 0
    assert not state.exists()
    assert url.startswith("http://127.0.0.1:")


# -- item 5 and issue 11 item 3: keys for `serve` ---------------------------------------------


def _serve_once(args: list[str], env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Start `aioembed serve`, read its lines up to the URL, stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioembed", "serve", "--port", "0", "--workers", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "AIOEMBED_API_KEY": "", "AIOEMBED_API_KEYS": "", **(env or {})},
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("aioembed serving on"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line.rstrip("\n"))
        return lines, lines[-1].split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_keeps_its_generated_key_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, _ = _serve_once(["--data-dir", str(data)])
    key_file = data / "api.key"
    assert first[0] == f"aioembed api key: generated in {key_file}"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key not in "\n".join(first)
    again, _ = _serve_once(["--data-dir", str(data)])
    assert again[0] == f"aioembed api key: from {key_file}"
    assert key_file.read_text().strip() == key


async def test_serve_api_key_file_keeps_the_key_out_of_argv(tmp_path: Path) -> None:
    import aiohttp

    key_file = tmp_path / "keys.txt"
    key_file.write_text("# the team's keys\nfile-key-1\n\nfile-key-2\n")
    key_file.chmod(0o600)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioembed", "serve", "--port", "0", "--workers", "1",
        "--data-dir", str(tmp_path / "d"), "--api-key-file", str(key_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("aioembed serving on"), line
        url = line.split()[-1]
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert b"file-key" not in f.read()
        async with aiohttp.ClientSession() as http:
            for key, status in (("file-key-1", 200), ("file-key-2", 200), ("nope", 401)):
                async with http.get(f"{url}/embed/tasks", headers={"x-api-key": key}) as r:
                    assert r.status == status
    finally:
        proc.terminate()
        await proc.wait()
    missing = _cli("serve", "--api-key-file", str(tmp_path / "absent"), "--data-dir", str(tmp_path / "e"))
    assert missing.returncode == 2 and "cannot read API key file" in missing.stderr


# -- issue 11 item 2: what the CLI leaves on disk is private -----------------------------------


async def test_the_cli_cache_is_private(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**NO_SERVER, "AIOEMBED_DATA_DIR": str(cache)}
    code, _, stderr = await run_cli("list", env=env, cwd=tmp_path)
    assert code == 0, stderr
    for d in (cache, cache / "server"):
        assert d.stat().st_mode & 0o777 == 0o700, d
    for name in ("embedded.key", "embedded.start.lock", "embedded.users.lock"):
        assert (cache / "server" / name).stat().st_mode & 0o777 == 0o600, name


# -- item 14: the first request, a missing extra, CI --------------------------------------------

_NO_IMPORT_ON_LOOP = """
import asyncio, sys, threading
from aioembed import AsyncClient

on_loop = []

def hook(event, args):
    if event == "import" and threading.current_thread() is threading.main_thread():
        if asyncio._get_running_loop() is not None:
            on_loop.append(args[0])

async def main(url, key, video):
    sys.addaudithook(hook)
    async with AsyncClient(key, base_url=url) as client:
        [t async for t in client.embed.tasks.list()]
        task = await client.embed.tasks.create("Marengo-retrieval-2.7", video_file=video)
        await task.wait(sleep_interval=0.2)
        (await task.retrieve()).segments[0].array()
        await client.embed.create("Marengo-retrieval-2.7", text="hello")

if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
    print(",".join(sorted(set(on_loop))))
"""


def test_first_requests_import_nothing_heavy_on_the_event_loop(
    tmp_path: Path, video_factory: Any, server_process: Any
) -> None:
    # The SDK alone (the server in another process): importing NumPy at the first
    # response blocked the event loop for 0.14-0.2 s.
    server = server_process()
    script = tmp_path / "first.py"
    script.write_text(_NO_IMPORT_ON_LOOP)
    video = video_factory(duration=5, fps=5, seed=43)
    result = subprocess.run(
        [sys.executable, str(script), server.base_url, server.api_key, str(video)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {m for m in result.stdout.strip().splitlines()[-1].split(",") if m}
    heavy = {m for m in imported if m.split(".")[0] in {"numpy", "av", "pyarrow", "rich", "orjson"}}
    assert not heavy, sorted(heavy)


def test_server_import_without_its_extra_names_the_extra() -> None:
    code = "import sys; sys.modules['numpy'] = None; import aioembed.server"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: aioembed.server needs the [server] extra (numpy is not installed): "
        "pip install 'aioembed[server]'"
    )


def test_ci_runs_the_readme_command_in_its_own_venv() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.startswith("#")]
    venv = next(i for i, c in enumerate(commands) if " -m venv " in c)
    activate = next(i for i, c in enumerate(commands) if c.startswith(". ") and "activate" in c)
    installs = [i for i, c in enumerate(commands) if "pip install" in c]
    assert venv < activate < min(installs)  # nothing installed into the outer interpreter
    assert not any("--upgrade pip" in c for c in commands)
    assert 'pip install --quiet -e ".[test]"' in commands[installs[-1]]  # the project's own files
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    assert commands[-1] == "python -m pytest"


# -- item 13: the README and docs ----------------------------------------------------------------


def _code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    """Logical lines of a shell block (continuations joined), comments dropped."""
    joined = block.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def test_docs_links_stay_inside_the_repository_and_exist() -> None:
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), (doc.name, target)
            assert resolved.exists(), (doc.name, target)
    assert "docs/wire-contract.md" in (ROOT / "README.md").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_readme_shell_lines_are_commands_that_parse() -> None:
    import shlex

    from aioembed.cli._args import _parser
    from aioembed.cli._worker import _parser as worker_parser
    from aioembed.server import _parser as serve_parser

    readme = (ROOT / "README.md").read_text()
    checked = 0
    for block in _code_blocks(readme, "bash") + _code_blocks((ROOT / "docs" / "cli.md").read_text(), "bash"):
        for line in _commands(block):
            assert "·" not in line, line
            for part in line.split("&&"):
                words = shlex.split(part.strip())
                if words[:1] != ["aioembed"] or words[1:2] == ["demo"]:
                    continue
                if words[1] == "serve":
                    args = serve_parser().parse_args(words[2:])
                    assert not args.api_key, f"a key in argv shows in ps: {line}"
                elif words[1] == "worker":
                    worker_parser().parse_args(words[2:])
                elif words[1] != "--version":
                    _parser().parse_args(words[1:])
                checked += 1
    assert checked >= 7
    assert '"KEY"' not in readme and "--api-key KEY" not in readme
    sdk = _code_blocks(readme, "python")[0]
    assert "--api-key-file key.txt" in sdk and 'read_text().strip()' in sdk
    assert "[all]" in readme.split("seg.array()")[-1].split("\n\n")[0]  # says where NumPy comes from
