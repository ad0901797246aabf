"""Shared fixtures: real servers on loopback, tiny generated media, a static file server.

Fixtures (all loopback-only):

* ``video_factory`` (session) -> :class:`MediaFactory`: ``video_factory(duration=6, ...)``
  makes a tiny sample video (cached per arguments for the session); also
  ``.image()``, ``.audio()``, ``.file(name, data)`` and ``.dir``.
* ``live_server`` -> :class:`LiveServer`: the server in-process on 127.0.0.1 (free
  port, tmp data dir, key ``test-key``, 1 worker, loopback allowed for URL inputs).
  ``.base_url`` ends ``/v1.3``; ``.api_key``, ``.headers``, ``.app``, ``.config``,
  ``.data_dir``, ``.counts(route=, method=, status=)``, ``.url(path)``.
* ``live_server_factory`` -> ``await start(**ServerConfig overrides) -> LiveServer``
  for other configurations (rate limits, slow backend, several keys...).
* ``client`` -> an :class:`~aioembed.AsyncClient` on ``live_server`` with quick retries;
  ``remote`` -> the environment pointing the CLI at ``live_server``; ``videos`` ->
  ``videos(n, prefix="v")``: ``n`` distinct tiny videos (one sample, retagged).
* ``server_process`` -> ``start(data_dir=None, *args, **kw) -> ServerProcess``: ``python -m
  aioembed.server`` as a subprocess; ``.kill()`` (SIGKILL), ``.stop()`` (SIGTERM),
  ``.restart()``, ``.base_url``, ``.pid``, ``.api_key``, ``.counts(key=)`` (via ``/metrics``:
  the key's own requests; every request with an ``--admin-key``).
* ``static_server`` -> :class:`StaticServer`: files from a tmp dir over HTTP
  (``.add(path)`` -> URL), plus ``/status/{code}``, ``/redirect?to=``, ``/stall``
  and ``/endless`` for URL-fetch failure tests; ``.hits`` counts requests by path.
* ``http`` -> an ``aiohttp.ClientSession``.
* ``wait_until`` -> ``await wait_until(async_predicate, timeout=30)``: poll with a deadline.
* ``postgres_dsn`` (session) -> a ``postgresql://`` URL of a throw-away PostgreSQL 16
  (``pgserver``, unix socket); ``s3_endpoint`` (session) -> ``http://127.0.0.1:port`` of
  moto's S3 (test credentials in ``S3_TEST_ENV``). Both skip clearly where they cannot start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web

from aioembed import AsyncClient, RetryPolicy
from aioembed.server import METRICS, ServerConfig, ServerRunner, create_app

API_KEY = "test-key"
LOOPBACK = ("127.0.0.0/8", "::1")


# -- media --------------------------------------------------------------------------


class MediaFactory:
    """Generates sample media into one session directory, each distinct request once."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self._lock = threading.Lock()

    def _path(self, kind: str, suffix: str, kwargs: dict[str, Any]) -> Path:
        digest = hashlib.sha1(
            json.dumps([kind, kwargs], sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        return self.dir / f"{kind}-{digest}{suffix}"

    def __call__(self, *, suffix: str = ".mp4", name: str | None = None, **kwargs: Any) -> Path:
        """A video from :func:`aioembed.samples.make_video` (``duration=6``, 360x360,
        15 fps by default). ``name`` copies it to a file of that name."""
        from aioembed.samples import make_video

        path = self._path("video", suffix, kwargs)
        with self._lock:
            if not path.exists():
                tmp = path.with_name("tmp-" + path.name)
                make_video(tmp, **kwargs)
                tmp.rename(path)
        return self._named(path, name)

    def image(self, *, suffix: str = ".png", name: str | None = None, **kwargs: Any) -> Path:
        from aioembed.samples import make_image

        path = self._path("image", suffix, kwargs)
        with self._lock:
            if not path.exists():
                make_image(path, **kwargs)
        return self._named(path, name)

    def audio(self, *, suffix: str = ".wav", name: str | None = None, **kwargs: Any) -> Path:
        from aioembed.samples import make_audio

        path = self._path("audio", suffix, kwargs)
        with self._lock:
            if not path.exists():
                tmp = path.with_name("tmp-" + path.name)
                make_audio(tmp, **kwargs)
                tmp.rename(path)
        return self._named(path, name)

    def file(self, name: str, data: bytes) -> Path:
        """An arbitrary file (corrupt media, text named ``.mp4``...)."""
        path = self.dir / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    def _named(self, path: Path, name: str | None) -> Path:
        if name is None:
            return path
        dest = self.dir / "named" / name
        dest.parent.mkdir(exist_ok=True)
        if not dest.exists():
            shutil.copyfile(path, dest)
        return dest


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory: pytest.TempPathFactory) -> MediaFactory:
    return MediaFactory(tmp_path_factory.mktemp("media"))


# -- HTTP client ----------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- in-process server ------------------------------------------------------------------


@attrs.define
class LiveServer:
    """A running in-process server."""

    base_url: str
    api_key: str
    app: web.Application
    config: ServerConfig
    runner: ServerRunner

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1.3")

    def url(self, path: str) -> str:
        """``path`` relative to the base URL (``"embed/tasks"``)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def counts(
        self, route: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """Requests the server has answered, by route template (``/v1.3/embed/tasks``)."""
        return self.app[METRICS].count(route, method, status)


async def _start_live(config: ServerConfig) -> LiveServer:
    app = create_app(config)
    runner = ServerRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    key = config.api_keys[0] if config.api_keys else ""
    return LiveServer(f"http://127.0.0.1:{port}/v1.3", key, app, config, runner)


LiveServerFactory = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def live_server_factory(tmp_path: Path) -> AsyncIterator[LiveServerFactory]:
    started: list[LiveServer] = []

    async def start(**overrides: Any) -> LiveServer:
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "data_dir": tmp_path / f"server-data-{len(started)}",
            "workers": 1,
            "sync_workers": 1,
            "api_keys": (API_KEY,),
            "url_allow": LOOPBACK,
            "url_fetch_timeout": 20.0,
        }
        options.update(overrides)
        server = await _start_live(ServerConfig(**options))
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            await server.runner.cleanup()


@pytest.fixture
async def live_server(live_server_factory: LiveServerFactory) -> LiveServer:
    return await live_server_factory()


#: Quick retries, so a transient error costs a test milliseconds, not seconds.
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.2, budget=10)


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        live_server.api_key, base_url=live_server.base_url, retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture
def remote(live_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    return {
        "AIOEMBED_BASE_URL": live_server.base_url,
        "AIOEMBED_API_KEY": live_server.api_key,
        "AIOEMBED_DATA_DIR": str(tmp_path / "cache"),
    }


@pytest.fixture
def videos(video_factory: MediaFactory, tmp_path: Path) -> Callable[..., list[Path]]:
    from aioembed.samples import retag

    base = video_factory(duration=4, fps=5, seed=21)

    def make(n: int, prefix: str = "v") -> list[Path]:
        folder = tmp_path / prefix
        folder.mkdir(exist_ok=True)
        return [retag(base, folder / f"{prefix}{i:03d}.mp4", f"{prefix}{i}") for i in range(n)]

    return make


# -- subprocess server ------------------------------------------------------------------


class ServerProcess:
    """``python -m aioembed.server`` on ``data_dir`` in its own session (process group)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        args: list[str],
        api_key: str,
        log_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.args = args
        self.api_key = api_key
        self.log_dir = log_dir
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self, timeout: float = 30.0) -> str:
        """Start and wait for the ``aioembed serving on URL`` line; returns the base URL.

        The port is kept across restarts once known, so URLs stay valid.
        """
        assert self.proc is None or self.proc.poll() is not None, "already running"
        port = self.base_url.rsplit(":", 1)[-1].split("/")[0] if self.base_url else "0"
        self.starts += 1
        stderr = open(self.log_dir / f"server-{self.starts}.log", "w")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "aioembed.server",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--data-dir",
            str(self.data_dir),
            "--api-key",
            self.api_key,
            *self.args,
        ]
        env = {**os.environ, **(self.env or {})}
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env=env,
        )
        stderr.close()
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(stream: Any) -> None:
            with stream:
                for line in stream:
                    lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise TimeoutError(f"server did not start in {timeout} s:\n{self.log_tail()}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait()
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if line.startswith("aioembed serving on "):
                self.base_url = line.split()[-1]
                return self.base_url

    def log_tail(self, chars: int = 4000) -> str:
        path = self.log_dir / f"server-{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server process only (its workers notice and exit by themselves)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def restart(self) -> str:
        self.kill()
        return self.start()

    def kill_group(self) -> None:
        """SIGKILL everything in the server's process group (teardown)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def get_json(self, path: str, *, key: str | None = None) -> Any:
        """A blocking GET (for helpers outside the event loop), with this server's key
        or ``key``."""
        headers = self.headers if key is None else {"x-api-key": key}
        req = urllib.request.Request(self.url(path), headers=headers)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def counts(self, *, key: str | None = None) -> dict[tuple[str, str, int], int]:
        """Request counts from the server's ``/metrics`` (this read not included): this
        server's key's own requests, or with an operator ``key`` (``--admin-key``) all."""
        data = self.get_json("metrics", key=key)
        return {(r["route"], r["method"], r["status"]): r["count"] for r in data["requests"]}


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    made: list[ServerProcess] = []

    def start(
        data_dir: Path | None = None,
        *args: str,
        api_key: str = API_KEY,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> ServerProcess:
        index = len(made)
        log_dir = tmp_path / f"server-logs-{index}"
        log_dir.mkdir()
        server = ServerProcess(
            data_dir or tmp_path / f"server-process-data-{index}",
            args=["--workers", "1", *args],
            api_key=api_key,
            log_dir=log_dir,
            env=env,
        )
        made.append(server)
        if wait:
            server.start()
        return server

    yield start
    for server in made:
        server.kill_group()


# -- static files over loopback -------------------------------------------------------------


@attrs.define
class StaticServer:
    base_url: str
    dir: Path
    hits: Counter[str]
    release: asyncio.Event

    def add(self, path: Path, name: str | None = None) -> str:
        """Serve a copy of ``path``; returns its URL."""
        name = name or path.name
        shutil.copyfile(path, self.dir / name)
        return f"{self.base_url}/files/{name}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


@pytest.fixture
async def static_server(tmp_path: Path) -> AsyncIterator[StaticServer]:
    root = tmp_path / "static"
    root.mkdir()
    hits: Counter[str] = Counter()
    release = asyncio.Event()
    routes = web.RouteTableDef()

    @routes.get("/files/{name}")
    async def files(request: web.Request) -> web.StreamResponse:
        path = root / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        if "stall_until_released" in request.query:
            await release.wait()
        return web.FileResponse(path)

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope")

    @routes.get("/redirect")
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    @routes.get("/stall")
    async def stall(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="late")

    @routes.get("/endless")
    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"\0" * 65536
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(chunk)
        return resp

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        hits[request.path] += 1
        return await handler(request)  # type: ignore[no-any-return]

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield StaticServer(f"http://127.0.0.1:{port}", root, hits, release)
    finally:
        release.set()
        await runner.cleanup()


# -- polling helpers ---------------------------------------------------------------------


async def _wait_until(
    predicate: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[Any]]:
    """``await wait_until(async_predicate, timeout=30)``: poll until truthy, with a deadline."""
    return _wait_until


# -- operator mode: PostgreSQL and an S3-compatible store ------------------------------

#: What a process talking to the ``s3_endpoint`` fixture needs in its environment.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A throw-away PostgreSQL for the whole session (the ``pgserver`` wheel: PostgreSQL 16
    on a unix socket, no network, nothing installed system-wide). Its data directory is
    not under pytest's basetemp, which concurrent pytest runs prune."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver (the `test` extra) is missing")
    pytest.importorskip("asyncpg", reason="asyncpg (the `scale` extra) is missing")
    with tempfile.TemporaryDirectory(prefix="aioembed-pg-") as pgdata:
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # noqa: BLE001 - any start failure means: cannot be had here
            pytest.skip(f"PostgreSQL (pgserver) could not start on this machine: {exc!r}")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a thread of this process) for the session."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (the `test` extra)")
    pytest.importorskip("aiobotocore", reason="aiobotocore (the `scale` extra) is missing")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - any start failure means: cannot be had here
        pytest.skip(f"moto's S3 server could not start: {exc!r}")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test credentials in this process's environment (botocore reads them there)."""
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return dict(S3_TEST_ENV)
