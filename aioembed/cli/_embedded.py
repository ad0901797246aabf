"""Which server a command talks to, and the embedded default shared by concurrent commands.

The rule (the same as :meth:`aioembed.AsyncClient.from_env`): with
``AIOEMBED_BASE_URL`` set, that server with ``AIOEMBED_API_KEY`` (or
``TWELVELABS_API_KEY``); with only a key set, TwelveLabs; with neither, an
embedded local server. ``demo`` always uses the embedded server.

The embedded server runs inside the first command that needs it, on a free
loopback port, with its data in the user's cache directory (0700) and a key kept
beside it (0600): tasks belong to a key, so a resumed batch must come back with
the same one. Only one server can hold a data directory, so the owner writes
its URL to ``embedded.json`` and later commands use that server instead of
starting their own. Guests hold a shared lock on ``embedded.users.lock`` while
they run; the owner stops its server only once it can take that lock
exclusively, i.e. the last user stops it. ``embedded.start.lock`` serialises
the find-or-start step with the owner's shutdown, so nobody picks up a URL that
is about to go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import attrs

from ..client import DEFAULT_BASE_URL, AsyncClient
from ..contract import v1
from ._errors import CliError, UsageError

if TYPE_CHECKING:
    from ..server import ServerRunner

__all__ = ["SERVER_RULE", "Endpoint", "cache_dir", "configured", "endpoint", "private_dir"]

#: How a command finds its server, for ``--help`` and error messages.
SERVER_RULE = (
    "Server: $AIOEMBED_BASE_URL with $AIOEMBED_API_KEY (or $TWELVELABS_API_KEY); only a key "
    "set means TwelveLabs; nothing set means an embedded local server (data in the user "
    "cache directory, shared by concurrent aioembed commands)."
)
_LOCK_POLL = 0.1


@attrs.frozen
class Endpoint:
    base_url: str
    api_key: str = attrs.field(repr=False)
    embedded: bool

    def client(self) -> AsyncClient:
        return AsyncClient(self.api_key, base_url=self.base_url)


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created 0700; an existing one is narrowed to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def cache_dir() -> Path:
    """The CLI's cache (``$AIOEMBED_DATA_DIR`` or the platform's user cache), created 0700."""
    from platformdirs import user_cache_dir

    return private_dir(Path(os.environ.get("AIOEMBED_DATA_DIR") or user_cache_dir("aioembed")))


def configured(environ: Mapping[str, str] = os.environ) -> Endpoint | None:
    """The server the environment names, or ``None`` for the embedded default."""
    base_url = environ.get("AIOEMBED_BASE_URL", "").strip()
    key = (environ.get("AIOEMBED_API_KEY") or environ.get("TWELVELABS_API_KEY") or "").strip()
    if base_url and not key:
        raise UsageError(
            f"AIOEMBED_BASE_URL is set ({base_url}) but no key: set AIOEMBED_API_KEY "
            "(or TWELVELABS_API_KEY), or unset AIOEMBED_BASE_URL for the embedded local server"
        )
    if not key:
        return None
    return Endpoint(base_url or DEFAULT_BASE_URL, key, embedded=False)


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _embedded_key(data_dir: Path) -> str:
    path = data_dir / "embedded.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = "aioembed-" + secrets.token_hex(16)
        _write_private(path, key)
        return key


class _Lock:
    """An ``flock`` on a file, taken by polling so waiting stays cancellable."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_take(self, exclusive: bool) -> bool:
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def take(self, exclusive: bool) -> None:
        while not self.try_take(exclusive):
            await asyncio.sleep(_LOCK_POLL)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


async def _alive(url: str, key: str) -> bool:
    root = url.removesuffix(v1.PREFIX)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(f"{root}/health", headers={"x-api-key": key}) as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _running(state: Path, key: str) -> str | None:
    try:
        url = str(json.loads(state.read_text())["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if await _alive(url, key) else None


@asynccontextmanager
async def endpoint(
    *, workers: int | None = None, embedded: bool = False, data_dir: Path | None = None
) -> AsyncIterator[Endpoint]:
    """The configured server, or (always with ``embedded=True``) the embedded one."""
    chosen = None if embedded else configured()
    if chosen is not None:
        yield chosen
        return
    data_dir = private_dir(data_dir or cache_dir() / "server")
    key = _embedded_key(data_dir)
    state = data_dir / "embedded.json"
    start, users = _Lock(data_dir / "embedded.start.lock"), _Lock(data_dir / "embedded.users.lock")
    try:
        runner = None
        await start.take(exclusive=True)
        try:
            url = await _running(state, key)
            if url is not None:
                await users.take(exclusive=False)  # at once: the owner takes it only under `start`
            else:
                runner, url = await _start_server(data_dir, key, workers)
                _write_private(state, json.dumps({"url": url, "pid": os.getpid()}))
        finally:
            start.release()
        try:
            yield Endpoint(url, key, embedded=True)
        finally:
            if runner is None:
                users.release()
            else:
                await _stop_when_alone(runner, state, start, users)
    finally:
        start.close()
        users.close()


async def _start_server(data_dir: Path, key: str, workers: int | None) -> tuple[ServerRunner, str]:
    from aiohttp import web

    from ..server import ServerConfig, ServerRunner, create_app

    options: dict[str, object] = {"port": 0, "data_dir": data_dir, "api_keys": (key,)}
    if workers is not None:
        options["workers"] = workers
    runner = ServerRunner(create_app(ServerConfig(**options)), access_log=None)  # type: ignore[arg-type]
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    except BaseException as e:
        await runner.cleanup()
        if isinstance(e, (RuntimeError, OSError)):  # data dir in use or unusable, no port
            raise CliError(f"the embedded server cannot start: {e}") from None
        raise
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}{v1.PREFIX}"


async def _stop_when_alone(runner: ServerRunner, state: Path, start: _Lock, users: _Lock) -> None:
    """Stop the server once no guest holds ``users``, withdrawing its URL first."""
    told = False
    while True:
        await start.take(exclusive=True)
        if users.try_take(exclusive=True):
            break
        start.release()
        if not told:
            print(
                "aioembed: other aioembed commands are using the embedded server; "
                "it stops when the last one ends",
                file=sys.stderr,
                flush=True,
            )
            told = True
        await asyncio.sleep(_LOCK_POLL * 3)
    try:
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
        await runner.cleanup()
    finally:
        users.release()
        start.release()
