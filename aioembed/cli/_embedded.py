"""The embedded default: a local server inside the CLI process, for a fresh machine.

With no ``AIOEMBED_BASE_URL`` / API key configured the CLI starts
``aioembed.server`` on a free loopback port with a persistent data directory in
the user's cache and a key kept beside it (tasks belong to a key, so a resumed
batch must come back with the same one), and stops it on the way out.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs

from ..contract import v1

__all__ = ["Endpoint", "default_data_dir", "endpoint"]


@attrs.frozen
class Endpoint:
    base_url: str
    api_key: str
    embedded: bool


def default_data_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("AIOEMBED_DATA_DIR") or user_cache_dir("aioembed")) / "server"


def _embedded_key(data_dir: Path) -> str:
    path = data_dir / "embedded.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = "aioembed-" + secrets.token_hex(16)
        path.write_text(key)
        path.chmod(0o600)
        return key


@asynccontextmanager
async def endpoint(
    *, data_dir: Path | None = None, workers: int | None = None
) -> AsyncIterator[Endpoint]:
    """The configured server, or an embedded one for the duration of the block."""
    base_url = os.environ.get("AIOEMBED_BASE_URL")
    key = os.environ.get("AIOEMBED_API_KEY") or os.environ.get("TWELVELABS_API_KEY")
    if base_url or key:
        if not (base_url and key):
            raise SystemExit(
                "set both AIOEMBED_BASE_URL and an API key (AIOEMBED_API_KEY or "
                "TWELVELABS_API_KEY), or neither to use the embedded local server"
            )
        yield Endpoint(base_url, key, embedded=False)
        return

    from aiohttp import web

    from ..server import ServerConfig, ServerRunner, create_app

    data_dir = data_dir or default_data_dir()
    key = _embedded_key(data_dir)
    config_kw: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "api_keys": (key,),
    }
    if workers is not None:
        config_kw["workers"] = workers
    config = ServerConfig(**config_kw)  # type: ignore[arg-type]
    runner = ServerRunner(create_app(config), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield Endpoint(f"http://127.0.0.1:{port}{v1.PREFIX}", key, embedded=True)
    finally:
        await runner.cleanup()
