"""Server hardening (issue 11): file modes, secrets in URLs and logs, scoped metrics,
connection limits, URL-fetch fairness and limits, shutdown and start-up failures.

Every test talks to a real server over loopback (in-process or ``python -m
aioembed.server``) with media generated here; figures are printed with
:func:`_faults.report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _faults import report

from aioembed import AsyncClient, TaskStatus
from aioembed.server._redact import is_redacted, redact_target, redact_url

MODEL = "Marengo-retrieval-2.7"


def _modes(root: Path) -> dict[str, str]:
    """Every directory and file under ``root`` (itself included) -> its mode bits, octal."""
    out = {".": oct(root.stat().st_mode & 0o777)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = oct(path.stat().st_mode & 0o777)
    return out


# -- item 2: owner-only files ----------------------------------------------------------------


async def test_data_dir_and_every_stored_file_are_owner_only_whatever_the_umask(
    live_server_factory: Any, video_factory: Any, tmp_path: Path
) -> None:
    """Under umask 0 (the worst case) the data dir and its folders are 0700 and the SQLite
    database, its WAL and shared-memory files, the lock and every upload are 0600."""
    video = video_factory(duration=4, fps=5, seed=111)
    old = os.umask(0)
    try:
        srv = await live_server_factory(data_dir=tmp_path / "private-data")
        async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
            task = await c.embed.tasks.create(video_file=video)
            # Mid-flight: the upload is in media/ until the task ends.
            modes_mid = _modes(srv.data_dir)
            done = await c.embed.tasks.wait(task.id, sleep_interval=0.05)
        assert done.status is TaskStatus.READY
        modes = _modes(srv.data_dir) | modes_mid
    finally:
        os.umask(old)
    dirs = {p: m for p, m in modes.items() if (srv.data_dir / p).is_dir()}
    files = {p: m for p, m in modes.items() if p not in dirs and (srv.data_dir / p).exists()}
    assert {"aioembed.sqlite3", "aioembed.sqlite3-wal", "aioembed.sqlite3-shm"} <= set(files)
    assert {".", "media", "uploads"} <= set(dirs)
    assert set(dirs.values()) == {"0o700"}, dirs
    assert set(files.values()) == {"0o600"}, files
    report("file-modes", dirs=dirs, files=files)


async def test_an_existing_world_readable_data_dir_is_tightened(
    live_server_factory: Any, tmp_path: Path
) -> None:
    """A data dir and database left 0755/0644 by an older version are made owner-only."""
    data = tmp_path / "old-data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "aioembed.sqlite3"
    db.touch()
    os.chmod(db, 0o644)
    srv = await live_server_factory(data_dir=data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {m for p, m in _modes(srv.data_dir).items() if p.startswith("aioembed")} == {"0o600"}


# -- item 5: secrets in the access log -------------------------------------------------------


def test_redaction_rules() -> None:
    signed = (
        "https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20261126&X-Amz-Signature=0f3a9c&X-Amz-Expires=900"
    )
    assert redact_url(signed) == (
        "https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=900"
    )
    assert redact_url("http://user:pa55@host:8080/a.mp4?sig=x&v=2") == (
        "http://REDACTED@host:8080/a.mp4?sig=REDACTED&v=2"
    )
    assert redact_url("https://h/a.mp4?token=abc&key=k&api_key=z&page=2") == (
        "https://h/a.mp4?token=REDACTED&key=REDACTED&api_key=REDACTED&page=2"
    )
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert redact_url(f"https://h/a?x={jwt}") == "https://h/a?x=REDACTED"
    plain = "https://example.com/videos/cat.mp4?quality=720&start=3"
    assert redact_url(plain) == plain and not is_redacted(plain)
    for url in (signed, "http://u:p@h/x", f"https://h/a?x={jwt}"):
        assert is_redacted(redact_url(url))
        assert redact_url(redact_url(url)) == redact_url(url)  # idempotent
    assert redact_target("/v1.3/metrics?api_key=k-123&page=1") == (
        "/v1.3/metrics?api_key=REDACTED&page=1"
    )


async def test_keys_in_query_strings_never_reach_the_access_log(
    server_process: Any, tmp_path: Path
) -> None:
    srv = server_process(tmp_path / "log-data", "--access-log")
    secret = "sk-live-0123456789abcdefSECRET"
    async with aiohttp.ClientSession() as http:
        for query in (
            f"api_key={secret}",
            f"x-api-key={secret}",
            f"token={secret}&page=1",
            f"whatever={secret}9z8y7x6w5v4u",
            f"sig={secret[:6]}",
        ):
            async with http.get(srv.url(f"embed/tasks?{query}"), headers=srv.headers) as resp:
                assert resp.status == 400  # unknown parameter; logged all the same
    srv.stop()
    log = srv.log_tail(1_000_000)
    lines = [line for line in log.splitlines() if "GET /v1.3/embed/tasks" in line]
    assert len(lines) == 5, log[-2000:]
    assert secret not in log and secret[:6] not in log
    assert all("REDACTED" in line for line in lines)
    assert "page=1" in log  # the rest of the line is kept


# -- item 17: a corrupt database at start-up -----------------------------------------------


def test_a_corrupt_database_is_one_line_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "corrupt-data"
    data.mkdir()
    db = data / "aioembed.sqlite3"
    db.write_bytes(b"this is not a database, just text that got here somehow\n" * 200)
    proc = subprocess.run(
        [sys.executable, "-m", "aioembed.server", "--port", "0", "--data-dir", str(data)],
        env={**os.environ, "AIOEMBED_API_KEY": "k"},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(db) in lines[0] and "move it" in lines[0] and "aside" in lines[0]
    assert lines[0].startswith("aioembed serve: error: ")
    assert db.read_bytes().startswith(b"this is not a database")  # left untouched


# -- item 4: /metrics scoped to the caller's key -----------------------------------------------

KEY_A, KEY_B, ADMIN = "tenant-a-key", "tenant-b-key", "operator-key"
TASKS = "/v1.3/embed/tasks"


async def _metrics(http: aiohttp.ClientSession, srv: Any, key: str) -> Any:
    async with http.get(srv.url("metrics"), headers={"x-api-key": key}) as resp:
        assert resp.status == 200
        return await resp.json()


def _rows(body: Any) -> dict[tuple[str, str, int], int]:
    return {(r["route"], r["method"], r["status"]): r["count"] for r in body["requests"]}


async def test_metrics_show_a_key_its_own_requests_and_tasks_and_an_operator_everything(
    live_server_factory: Any, video_factory: Any, http: aiohttp.ClientSession
) -> None:
    srv = await live_server_factory(api_keys=(KEY_A, KEY_B), admin_keys=(ADMIN,))
    video = video_factory(duration=4, fps=5, seed=112)
    async with AsyncClient(KEY_A, base_url=srv.base_url) as a:
        task = await a.embed.tasks.create(video_file=video)
        await a.embed.tasks.wait(task.id, sleep_interval=0.05)
    for key, n in ((KEY_A, 3), (KEY_B, 2)):
        for _ in range(n):
            async with http.get(srv.url("embed/tasks"), headers={"x-api-key": key}) as resp:
                assert resp.status == 200
    async with http.get(srv.url("embed/tasks"), headers={"x-api-key": "wrong"}) as resp:
        assert resp.status == 401

    mine = await _metrics(http, srv, KEY_A)
    theirs = await _metrics(http, srv, KEY_B)
    everything = await _metrics(http, srv, ADMIN)

    assert mine["scope"] == theirs["scope"] == "key" and everything["scope"] == "server"
    assert _rows(mine)[(TASKS, "GET", 200)] == 3 and _rows(mine)[(TASKS, "POST", 200)] == 1
    assert _rows(theirs) == {(TASKS, "GET", 200): 2}  # its own read not yet counted
    assert mine["tasks"]["ready"] == 1 and theirs["tasks"] == dict.fromkeys(
        ("processing", "ready", "failed"), 0
    )
    for body in (mine, theirs):  # nothing about the server's processes or other tenants
        assert not {"workers", "sync_workers", "dispatcher"} & set(body)
        assert "pids" not in str(body)
        assert all(status != 401 for (_, _, status) in _rows(body))
    rows = _rows(everything)
    assert rows[(TASKS, "GET", 200)] == 5 and rows[(TASKS, "GET", 401)] == 1
    assert everything["tasks"]["ready"] == 1 and everything["workers"]["pids"]
    # The in-process count (the ``live_server.counts()`` tests use) is the whole server's.
    assert srv.counts(TASKS, "GET", 200) == 5
    # The operator key is a tenant of its own as well: it sees no task of A's.
    async with http.get(srv.url(f"embed/tasks/{task.id}"), headers={"x-api-key": ADMIN}) as r:
        assert r.status == 404


def test_server_process_counts_are_the_keys_own(server_process: Any, tmp_path: Path) -> None:
    """``ServerProcess.counts()`` (tests and benchmarks count their requests with it)."""
    srv = server_process(tmp_path / "counts-data", "--api-key", KEY_B, "--admin-key", ADMIN)
    srv.get_json("embed/tasks")
    srv.get_json("embed/tasks", key=KEY_B)
    assert srv.counts() == {(TASKS, "GET", 200): 1}
    assert srv.counts(key=ADMIN)[(TASKS, "GET", 200)] == 2


# -- item 8: connections time out and are capped -------------------------------------------------

FAST_LIMITS = {
    "header_timeout": 1.0,
    "idle_timeout": 1.5,
    "body_timeout": 1.0,
    "min_body_rate": 1000,
}


def _hostport(srv: Any) -> tuple[str, int]:
    host, port = srv.base_url.split("//")[1].split("/")[0].split(":")
    return host, int(port)


async def _closed_after(reader: asyncio.StreamReader, limit: float = 15.0) -> tuple[float, bytes]:
    """Seconds until the server closes the connection, and what it sent before."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    data = b""
    async with asyncio.timeout(limit):
        while chunk := await reader.read(65536):
            data += chunk
    return loop.time() - started, data


async def _open(srv: Any, local: str | None = None) -> tuple[Any, Any]:
    host, port = _hostport(srv)
    return await asyncio.open_connection(host, port, local_addr=(local, 0) if local else None)


def _upload_head(srv: Any, length: int) -> bytes:
    return (
        b"POST /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nx-api-key: "
        + srv.api_key.encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + b'--b\r\nContent-Disposition: form-data; name="model_name"\r\n\r\n'
        + MODEL.encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="video_file"; filename="v.mp4"\r\n'
        b"Content-Type: video/mp4\r\n\r\n"
    )


async def test_idle_half_sent_and_trickling_connections_are_closed_in_time(
    live_server_factory: Any,
) -> None:
    srv = await live_server_factory(**FAST_LIMITS)
    figures: dict[str, float] = {}

    # Idle from the start: closed after idle_timeout.
    r, w = await _open(srv)
    figures["idle_s"], _ = await _closed_after(r)
    w.close()

    # Idle after one answered request (keep-alive): the same.
    r, w = await _open(srv)
    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    figures["keepalive_idle_s"], _ = await _closed_after(r)
    w.close()

    # Half a header: closed header_timeout after the first byte.
    r, w = await _open(srv)
    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\nx-api-k")
    figures["half_header_s"], _ = await _closed_after(r)
    w.close()

    # A body trickling at 5 bytes/s (below min_body_rate): 408, upload removed, closed.
    r, w = await _open(srv)
    w.write(_upload_head(srv, 100_000))

    async def trickle() -> None:
        for _ in range(100):
            await asyncio.sleep(0.2)
            w.write(b"x")

    dripping = asyncio.create_task(trickle())
    try:
        figures["trickling_body_s"], answer = await _closed_after(r)
    finally:
        dripping.cancel()
        w.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer.replace(b" ", b"")

    assert 1.4 <= figures["idle_s"] < 4.0, figures
    assert 1.4 <= figures["keepalive_idle_s"] < 4.0, figures
    assert 0.9 <= figures["half_header_s"] < 3.0, figures
    assert 0.9 <= figures["trickling_body_s"] < 5.0, figures
    assert list((srv.data_dir / "uploads").iterdir()) == []
    report("connection-timeouts", **{k: round(v, 2) for k, v in figures.items()})


async def test_connections_over_the_caps_are_answered_and_closed(live_server_factory: Any) -> None:
    """Per address: 429 past the cap (another address is still served); per server: 503.
    Both answers are the contract's JSON with Retry-After, readable by the client."""
    srv = await live_server_factory(max_connections=30, max_connections_per_ip=10)
    held = [await _open(srv) for _ in range(10)]
    r, w = await _open(srv)
    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    _, answer = await _closed_after(r)
    w.close()
    assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 1" in answer, answer
    assert b"too_many_requests" in answer
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=connector) as other,
        other.get(srv.root_url + "/health") as resp,
    ):
        assert resp.status == 200
    held += [await _open(srv, local=f"127.0.0.{3 + i // 9}") for i in range(20)]
    r, w = await _open(srv, local="127.0.0.9")
    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    _, answer = await _closed_after(r)
    w.close()
    assert answer.startswith(b"HTTP/1.1 503") and b"server_busy" in answer, answer
    for _, hw in held:
        hw.close()


def _root(srv: Any) -> str:
    return str(srv.base_url).removesuffix("/v1.3")


async def _slowloris(srv: Any, crowd: int, seconds: float) -> dict[str, Any]:
    """``crowd`` connections from 127.0.0.1 (a third idle, a third stuck in their headers,
    a third trickling a body; each reopened a moment after the server closes it) while
    /health is polled from 127.0.0.2, a fresh connection each time."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds
    opened = 0

    async def attacker(n: int) -> None:
        nonlocal opened
        while loop.time() < stop:
            try:
                r, w = await _open(srv)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            opened += 1
            try:
                if n % 3 == 1:
                    w.write(b"GET /health HTTP/1.1\r\nHost: x\r\nx-api-k")
                elif n % 3 == 2:
                    w.write(_upload_head(srv, 10_000_000))
                while loop.time() < stop:
                    if n % 3 == 2:
                        w.write(b"x")
                    with contextlib.suppress(TimeoutError):
                        if not await asyncio.wait_for(r.read(65536), 0.5):
                            break  # closed by the server
            except ConnectionError:
                pass
            finally:
                w.close()
            await asyncio.sleep(0.2)

    latencies: list[float] = []
    failures: list[str] = []

    async def poller() -> None:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            while loop.time() < stop:
                started = loop.time()
                try:
                    async with http.get(
                        _root(srv) + "/health", timeout=aiohttp.ClientTimeout(total=10)
                    ) as resp:
                        await resp.read()
                        if resp.status != 200:
                            failures.append(str(resp.status))
                except (aiohttp.ClientError, TimeoutError) as e:
                    failures.append(repr(e))
                latencies.append(loop.time() - started)
                await asyncio.sleep(0.05)

    await asyncio.gather(poller(), *(attacker(n) for n in range(crowd)))
    return {"latencies": latencies, "failures": failures, "opened": opened}


def _limit_args(per_ip: int) -> list[str]:
    args = ["--max-connections-per-ip", str(per_ip), "--admin-key", ADMIN]
    for name, value in FAST_LIMITS.items():
        args += ["--" + name.replace("_", "-"), str(value)]
    return args


@pytest.mark.parametrize(
    ("crowd", "seconds", "per_ip"),
    [
        pytest.param(150, 5.0, 50, id="150-for-5s"),
        pytest.param(1200, 20.0, 512, id="1200-for-20s", marks=pytest.mark.slow),
    ],
)
async def test_a_slowloris_crowd_does_not_starve_health(
    server_process: Any, tmp_path: Path, crowd: int, seconds: float, per_ip: int
) -> None:
    from _faults import percentile

    srv = server_process(tmp_path / "slowloris-data", *_limit_args(per_ip))
    result = await _slowloris(srv, crowd, seconds)
    latencies, failures = result["latencies"], result["failures"]
    assert failures == [], failures[:5]
    assert len(latencies) >= 10
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    assert p99 < 2.0, p99
    # Once the crowd is gone nothing it opened is still held.
    for _ in range(100):
        stats = srv.get_json("metrics", key=ADMIN)["connections"]
        if stats["open"] <= 1:  # this request's own connection
            break
        await asyncio.sleep(0.05)
    assert stats["open"] <= 1, stats
    assert stats.get("refused_ip", 0) > 0 and stats.get("header_timeout", 0) > 0
    assert stats.get("body_timeout", 0) > 0
    report(
        f"slowloris-{crowd}",
        crowd=crowd,
        seconds=seconds,
        health_polls=len(latencies),
        health_p50_ms=round(p50 * 1000, 1),
        health_p99_ms=round(p99 * 1000, 1),
        connections_opened=result["opened"],
        **{k: v for k, v in stats.items() if k not in ("open", "addresses")},
    )


def test_emfile_log_lines_are_rate_limited() -> None:
    """10,000 "Too many open files" records (asyncio's accept failure, as logged) become
    one line per interval, saying how many it stands for; other records pass."""
    import errno
    import logging

    from aioembed.server._connguard import EmfileLogFilter

    logger = logging.getLogger("aioembed.test.emfile")
    logger.propagate = False
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Keep())
    flt = EmfileLogFilter(interval=3600)
    logger.addFilter(flt)
    err = OSError(errno.EMFILE, "Too many open files")
    for _ in range(10_000):
        logger.error("socket.accept() out of system resource", exc_info=(OSError, err, None))
    logger.error("something else")
    assert [r.getMessage() for r in seen] == [
        "socket.accept() out of system resource",
        "something else",
    ]
    assert seen[0].exc_info is None  # one line, no traceback
    assert flt.suppressed == 9_999
    flt.interval = 0
    logger.error("accept failed: [Errno 24] Too many open files")
    assert "9999 more like it" in seen[-1].getMessage()


# -- a file server with credentials, slow answers and broken redirects ---------------------------

SECRET_TOKEN = "t0k3n-9f8e7d"
SECRET_PASS = "pa55w0rd-31337"
SIGNATURE = "5e1f0a9bc0ffee"
BAD_LOCATIONS = ("http://[", "http://h:99999/x", "http://exa mple.com/", "ftp://h/x", "//")


@pytest.fixture
async def odd_server(tmp_path: Path) -> Any:
    """Loopback HTTP: ``/secret/{name}`` (only with the token and the password),
    ``/slow`` (a byte a second, for ever), ``/bad/{i}`` (a 302 to ``BAD_LOCATIONS[i]``)."""
    from aiohttp import BasicAuth, web

    root = tmp_path / "odd"
    root.mkdir()
    hits: dict[str, int] = {}
    routes = web.RouteTableDef()

    @routes.get("/secret/{name}")
    async def secret(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        ok = auth and BasicAuth.decode(auth).password == SECRET_PASS
        if request.query.get("token") != SECRET_TOKEN or not ok:
            raise web.HTTPForbidden()
        return web.FileResponse(root / request.match_info["name"])

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(600):
                await resp.write(b"\0")
                await asyncio.sleep(1.0)
        return resp

    @routes.get("/bad/{i}")
    async def bad(request: web.Request) -> web.Response:
        location = BAD_LOCATIONS[int(request.match_info["i"])]
        return web.Response(status=302, headers={"Location": location})

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        hits[request.path] = hits.get(request.path, 0) + 1
        return await handler(request)  # type: ignore[no-any-return]

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]

    class Odd:
        base = f"http://127.0.0.1:{port}"
        files = root
        count = hits

    try:
        yield Odd()
    finally:
        await runner.cleanup()


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


# -- item 2: credentials in URLs are neither stored nor shown ------------------------------------


async def test_credentials_in_urls_are_fetched_with_but_never_stored_or_shown(
    live_server_factory: Any, video_factory: Any, odd_server: Any, http: aiohttp.ClientSession
) -> None:
    import shutil

    srv = await live_server_factory()
    shutil.copyfile(video_factory(duration=4, fps=5, seed=113), odd_server.files / "v.mp4")
    shutil.copyfile(video_factory.image(), odd_server.files / "i.png")
    host = odd_server.base.removeprefix("http://")
    query = f"?X-Amz-Signature={SIGNATURE}&token={SECRET_TOKEN}&v=1"
    url = f"http://alice:{SECRET_PASS}@{host}/secret/v.mp4{query}"
    shown = f"http://REDACTED@{host}/secret/v.mp4?X-Amz-Signature=REDACTED&token=REDACTED&v=1"

    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        task = await c.embed.tasks.create(video_url=url)
        done = await c.embed.tasks.wait(task.id, sleep_interval=0.05)
        assert done.status is TaskStatus.READY, done  # fetched with the real URL
        listed = [t async for t in c.embed.tasks.list()]
        image = await c.embed.create(
            model_name=MODEL,
            image_url=f"http://alice:{SECRET_PASS}@{host}/secret/i.png?token={SECRET_TOKEN}",
        )
    for path in (f"embed/tasks/{task.id}/status", f"embed/tasks/{task.id}", "embed/tasks"):
        async with http.get(srv.url(path), headers=srv.headers) as resp:
            text = await resp.text()
        assert SECRET_PASS not in text and SECRET_TOKEN not in text and SIGNATURE not in text
        assert shown in text, text[:500]
    assert done.video_embedding is not None
    assert done.video_embedding.metadata.input_url == shown
    assert listed[0].video_embedding.metadata.input_url == shown  # type: ignore[union-attr]
    assert image.image_embedding is not None
    assert image.image_embedding.metadata["input_url"] == (
        f"http://REDACTED@{host}/secret/i.png?token=REDACTED"
    )
    # Nothing on disk holds them: database, WAL, uploads, media.
    stored = _all_bytes(srv.data_dir)
    for secret in (SECRET_PASS, SECRET_TOKEN, SIGNATURE):
        assert secret.encode() not in stored


async def test_v2_task_credentials_in_urls_are_fetched_with_but_never_stored_or_shown(
    live_server_factory: Any, video_factory: Any, odd_server: Any, http: aiohttp.ClientSession
) -> None:
    import shutil

    srv = await live_server_factory()
    shutil.copyfile(video_factory(duration=4, fps=5, seed=114), odd_server.files / "w.mp4")
    host = odd_server.base.removeprefix("http://")
    url = f"http://alice:{SECRET_PASS}@{host}/secret/w.mp4?token={SECRET_TOKEN}&v=1"
    body = {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"url": url}, "embedding_option": ["visual"]},
    }
    async with http.post(srv.url("embed-v2/tasks"), json=body, headers=srv.headers) as resp:
        assert resp.status == 200, await resp.text()
        task_id = (await resp.json())["_id"]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with http.get(srv.url(f"embed-v2/tasks/{task_id}"), headers=srv.headers) as resp:
            text = await resp.text()
        status = json.loads(text)["status"]
        if status != "processing" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert status == "ready", text[:500]  # fetched with the real URL
    assert SECRET_PASS not in text and SECRET_TOKEN not in text
    stored = _all_bytes(srv.data_dir)
    for secret in (SECRET_PASS, SECRET_TOKEN):
        assert secret.encode() not in stored


async def test_a_redacted_url_not_fetched_before_a_restart_fails_once_and_clearly(
    server_process: Any, odd_server: Any, tmp_path: Path
) -> None:
    """The URL as given lives in memory only: after a crash before the download, the task
    cannot be fetched again, and says so (``internal_error``, which batches resubmit)."""
    srv = server_process(tmp_path / "restart-data", "--allow-url-host", "127.0.0.1")
    url = f"{odd_server.base}/slow?token={SECRET_TOKEN}"
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        task = await c.embed.tasks.create(video_url=url)
    srv.restart()
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        done = await c.embed.tasks.wait(
            task.id, sleep_interval=0.05, timeout=30, raise_on_failure=False
        )
    assert done.status is TaskStatus.FAILED and done.error is not None
    assert done.error.code == "internal_error"
    assert "create the task again" in done.error.message
    assert SECRET_TOKEN.encode() not in _all_bytes(srv.data_dir)
    assert "Traceback" not in srv.log_tail(100_000)


# -- item 15: an unparseable redirect ---------------------------------------------------------


async def test_unparseable_redirects_are_400_and_fail_a_task_once(
    live_server_factory: Any,
    odd_server: Any,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    srv = await live_server_factory()
    for i, location in enumerate(BAD_LOCATIONS):
        data = aiohttp.FormData()
        data.add_field("model_name", MODEL)
        data.add_field("image_url", f"{odd_server.base}/bad/{i}")
        async with http.post(srv.url("embed"), data=data, headers=srv.headers) as resp:
            body = await resp.json()
        assert resp.status == 400, (location, body)
        assert body["code"] == "parameter_invalid" and "redirect" in body["message"], body
    assert srv.counts("/v1.3/embed", "POST", 500) == 0

    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        task = await c.embed.tasks.create(video_url=f"{odd_server.base}/bad/0")
        done = await c.embed.tasks.wait(
            task.id, sleep_interval=0.05, timeout=30, raise_on_failure=False
        )
    assert done.status is TaskStatus.FAILED and done.error is not None
    assert done.error.code == "parameter_invalid" and "invalid URL" in done.error.message
    assert odd_server.count["/bad/0"] == 2  # once by POST /embed, once by the task: no retry
    errors = [r for r in caplog.records if r.levelno >= 40 and r.name.startswith("aioembed")]
    assert errors == [] and all(r.exc_info is None for r in caplog.records)


# -- item 14: one size limit for every input -------------------------------------------------------


async def test_one_size_limit_for_uploads_and_urls(
    live_server_factory: Any,
    video_factory: Any,
    static_server: Any,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    from _faults import padded

    from aioembed import PayloadTooLargeError

    srv = await live_server_factory(max_upload_bytes=1024 * 1024)
    big = padded(video_factory(duration=4, fps=5, seed=114), tmp_path / "big.mp4", 3 * 1024**2)
    url = static_server.add(big)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        with pytest.raises(PayloadTooLargeError):
            await c.embed.tasks.create(video_file=big)
        for target in (url, static_server.url("endless")):  # declared size, and none
            task = await c.embed.tasks.create(video_url=target)
            done = await c.embed.tasks.wait(
                task.id, sleep_interval=0.05, timeout=30, raise_on_failure=False
            )
            assert done.status is TaskStatus.FAILED and done.error is not None
            assert done.error.code == "video_filesize_too_large", done.error
    data = aiohttp.FormData()
    data.add_field("model_name", MODEL)
    data.add_field("image_url", url)
    async with http.post(srv.url("embed"), data=data, headers=srv.headers) as resp:
        assert resp.status == 413
        assert (await resp.json())["code"] == "video_filesize_too_large"
    assert list((srv.data_dir / "uploads").iterdir()) == []


# -- item 13: slow URLs hold their own key's fetch slots, never a worker -------------------------


async def test_slow_urls_hold_only_their_keys_fetch_slots_and_no_worker(
    live_server_factory: Any, odd_server: Any, video_factory: Any, static_server: Any
) -> None:
    """Key A floods slow URLs (a byte a second): six ``video_url`` tasks and two ``POST
    /embed`` ``image_url``s. Meanwhile key B's fast URLs and A's own upload go through at once
    (one worker, two fetch slots per key), and A's slow downloads fail on the minimum rate."""
    window = 4.0
    srv = await live_server_factory(
        api_keys=(KEY_A, KEY_B), url_fetch_per_key=2, url_min_rate=100, url_rate_window=window
    )
    video = video_factory(duration=4, fps=5, seed=115)
    fast_video = static_server.add(video)
    fast_image = static_server.add(video_factory.image())
    slow = f"{odd_server.base}/slow"
    loop = asyncio.get_running_loop()
    async with (
        AsyncClient(KEY_A, base_url=srv.base_url) as a,
        AsyncClient(KEY_B, base_url=srv.base_url) as b,
    ):
        # Baseline (and warm-up): the same fast URL with nothing else going on.
        started = loop.time()
        first = await b.embed.tasks.create(video_url=fast_video)
        await b.embed.tasks.wait(first.id, sleep_interval=0.05)
        baseline_s = loop.time() - started
        slow_tasks = [await a.embed.tasks.create(video_url=f"{slow}?n={i}") for i in range(6)]
        slow_embeds = [
            asyncio.create_task(a.embed.create(model_name=MODEL, image_url=f"{slow}?i={i}"))
            for i in range(2)
        ]
        try:
            await asyncio.sleep(0.5)  # the slow downloads have started
            started = loop.time()
            fast = await b.embed.tasks.create(video_url=fast_video)
            await b.embed.tasks.wait(fast.id, sleep_interval=0.05)
            fast_url_task_s = loop.time() - started
            # ...while A's slow downloads were still going (one worker: with the download in
            # its slot, B's task would have waited for every one of A's).
            pending = [(await a.embed.tasks.status(t.id)).status for t in slow_tasks]
            assert pending.count(TaskStatus.PROCESSING) >= 2, pending
            started = loop.time()
            await b.embed.create(model_name=MODEL, image_url=fast_image)
            fast_image_url_s = loop.time() - started
            started = loop.time()
            own = await a.embed.tasks.create(video_file=video)
            await a.embed.tasks.wait(own.id, sleep_interval=0.05)
            a_upload_s = loop.time() - started

            started = loop.time()
            ends = [
                await a.embed.tasks.wait(
                    t.id, sleep_interval=0.1, timeout=90, raise_on_failure=False
                )
                for t in slow_tasks
            ]
        finally:
            embeds = await asyncio.gather(*slow_embeds, return_exceptions=True)
        slow_drained_s = loop.time() - started
    for end in ends:
        assert end.status is TaskStatus.FAILED and end.error is not None
        assert end.error.code == "parameter_invalid" and "slower than" in end.error.message
    assert all(getattr(e, "status", None) == 400 for e in embeds), embeds
    report(
        "url-fetch-fairness",
        fast_url_task_alone_s=round(baseline_s, 2),
        fast_url_task_s=round(fast_url_task_s, 2),
        fast_image_url_s=round(fast_image_url_s, 2),
        same_key_upload_task_s=round(a_upload_s, 2),
        slow_urls_failed_after_s=round(slow_drained_s, 1),
    )


# -- item 16: SIGTERM during uploads --------------------------------------------------------------


def _multipart(video: Path) -> tuple[bytes, bytes]:
    """(head, body) of a create request for ``video``: a real multipart upload."""
    boundary = "hardening-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model_name"\r\n\r\n{MODEL}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; filename="v.mp4"'
            "\r\nContent-Type: video/mp4\r\n\r\n"
        ).encode()
        + video.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "POST /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nx-api-key: test-key\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def test_sigterm_lets_uploads_finish_within_the_grace_and_keeps_accepted_tasks(
    server_process: Any, video_factory: Any, tmp_path: Path
) -> None:
    """SIGTERM with two uploads in flight: the one that completes within the grace
    (--shutdown-grace 3) gets its task id, the one that would take minutes is cut at the
    grace; the server exits in about the grace (not aiohttp's 60 s), every accepted task is
    there after a restart, and no partial upload is left."""
    import json
    import signal

    grace = 3.0
    srv = server_process(tmp_path / "term-data", "--shutdown-grace", str(grace))
    video = video_factory(duration=4, fps=5, seed=116)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        before = await c.embed.tasks.create(video_file=video)
    head, body = _multipart(video)
    quick_r, quick_w = await _open(srv)
    quick_w.write(head + body[: len(body) // 2])
    slow_r, slow_w = await _open(srv)
    slow_w.write(head + body[:1000])

    async def trickle() -> None:  # 2 KiB/s: above the body rate, minutes to finish
        with contextlib.suppress(ConnectionError):
            for i in range(1000, len(body), 2048):
                slow_w.write(body[i : i + 2048])
                await asyncio.sleep(1.0)

    dripping = asyncio.create_task(trickle())
    await asyncio.sleep(1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    quick_w.write(body[len(body) // 2 :])  # the rest, after SIGTERM
    _, quick_answer = await _closed_after(quick_r, limit=30)
    code = await asyncio.to_thread(srv.proc.wait, 60)
    exit_s = loop.time() - started
    dripping.cancel()
    slow_answer = b""  # cut: no answer, or a reset
    with contextlib.suppress(ConnectionError):
        _, slow_answer = await _closed_after(slow_r, limit=5)
    for w in (quick_w, slow_w):
        w.close()

    assert code == 0
    assert quick_answer.startswith(b"HTTP/1.1 200"), quick_answer[:300]
    quick_id = json.loads(quick_answer.split(b"\r\n\r\n", 1)[1])["_id"]
    assert not slow_answer.startswith(b"HTTP/1.1 200")
    assert exit_s < grace + 10, exit_s
    srv.start()
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as c:
        for task_id in (before.id, quick_id):
            done = await c.embed.tasks.wait(task_id, sleep_interval=0.05, timeout=60)
            assert done.status is TaskStatus.READY
    assert list((srv.data_dir / "uploads").iterdir()) == []
    report("sigterm-during-uploads", grace_s=grace, exit_after_sigterm_s=round(exit_s, 2))


async def test_thirty_two_slow_image_urls_do_not_delay_another_keys_fast_one(
    live_server_factory: Any, odd_server: Any, video_factory: Any, static_server: Any
) -> None:
    """The issue's case, with the default limits: 32 ``image_url``s at a byte a second used
    to fill the 32-connection pool and a fast URL waited 37 s. Now they hold key A's four
    fetch slots (the other 28 wait in line) and key B's URL is fetched at once."""
    # (A short grace: the slow downloads are still going when the server stops.)
    srv = await live_server_factory(api_keys=(KEY_A, KEY_B), shutdown_grace=0.5)
    fast_image = static_server.add(video_factory.image())
    loop = asyncio.get_running_loop()
    async with (
        AsyncClient(KEY_A, base_url=srv.base_url) as a,
        AsyncClient(KEY_B, base_url=srv.base_url) as b,
    ):
        started = loop.time()
        await b.embed.create(model_name=MODEL, image_url=fast_image)
        alone_s = loop.time() - started
        slow = [
            asyncio.create_task(
                a.embed.create(model_name=MODEL, image_url=f"{odd_server.base}/slow?i={i}")
            )
            for i in range(32)
        ]
        try:
            while odd_server.count.get("/slow", 0) < 4:
                await asyncio.sleep(0.05)
            started = loop.time()
            await b.embed.create(model_name=MODEL, image_url=fast_image)
            waited_s = loop.time() - started
            assert sum(not t.done() for t in slow) == 32  # all still in flight
            assert odd_server.count["/slow"] == 4  # A's four slots, no more
        finally:
            for t in slow:
                t.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
    report(
        "slow-image-urls-32",
        fast_url_alone_s=round(alone_s, 2),
        fast_url_waited_s=round(waited_s, 2),
    )
