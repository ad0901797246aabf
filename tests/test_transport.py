"""The SDK's HTTP edge against real loopback servers that misbehave on purpose:
redirects to another origin, malformed and oversized answers, refused connections."""

from __future__ import annotations

import resource
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from aioembed import (
    AsyncClient,
    CrossOriginRedirectError,
    Limits,
    NotFoundError,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TaskStatus,
    TransportError,
)

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05, budget=5)
TASK = {"_id": "t1", "status": "ready", "model_name": "Marengo-retrieval-2.7"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Recorder:
    """A loopback server that answers every request with ``handler`` and keeps what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, str, dict[str, str], int]] = []
        self.runner: web.AppRunner | None = None
        self.origin = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.path_qs, dict(request.headers), len(body)))
        resp = await self.handler(request)
        if not resp.prepared:  # a streamed answer set its own
            resp.headers["x-request-id"] = f"req-{len(self.seen)}"
        return resp

    async def start(self) -> Recorder:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.origin = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Recorder]]]:
    started: list[Recorder] = []

    async def start(handler: Handler) -> Recorder:
        rec = await Recorder(handler).start()
        started.append(rec)
        return rec

    yield start
    for rec in started:
        await rec.stop()


# -- redirects ---------------------------------------------------------------------


async def test_cross_origin_redirects_are_not_followed(serve: Any, video_factory: Any) -> None:
    """A 301/307 to another origin (another loopback port) never receives the key, the
    upload or the Idempotency-Key: the client stops and names the target."""

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response(TASK)

    other = await serve(elsewhere)

    async def redirecting(request: web.Request) -> web.Response:
        status = 307 if request.method == "POST" else 301
        return web.Response(status=status, headers={"Location": other.origin + request.path_qs})

    api_server = await serve(redirecting)
    async with AsyncClient("secret-key", base_url=api_server.origin + "/v1.3", retry=FAST) as c:
        with pytest.raises(CrossOriginRedirectError) as post:
            await c.embed.tasks.create(video_file=video_factory(duration=4, fps=5, seed=41))
        with pytest.raises(CrossOriginRedirectError) as get:
            await c.embed.tasks.status("t1")
    assert post.value.status == 307 and post.value.target.startswith(other.origin)
    assert get.value.status == 301 and other.origin in str(get.value)
    assert other.seen == []  # nothing, not even a header, reached the other origin
    assert len(api_server.seen) == 2  # and a refused redirect is not retried


async def test_same_origin_redirects_are_followed_with_the_key(serve: Any) -> None:
    async def api(request: web.Request) -> web.Response:
        if request.path.startswith("/v1.3/embed/tasks/"):
            return web.Response(status=308, headers={"Location": "/v1.3/moved/t1"})
        return web.json_response(TASK)

    server = await serve(api)
    async with AsyncClient("secret-key", base_url=server.origin + "/v1.3") as c:
        task = await c.embed.tasks.status("t1")
    assert task.status is TaskStatus.READY
    assert [path for _, path, _, _ in server.seen] == ["/v1.3/embed/tasks/t1/status", "/v1.3/moved/t1"]
    assert all(h.get("x-api-key") == "secret-key" for _, _, h, _ in server.seen)


# -- malformed answers --------------------------------------------------------------

MALFORMED: dict[str, bytes] = {
    "null": b"null",
    "list": b"[1, 2]",
    "not json": b"<html>oops</html>",
    "status wrong type": b'{"_id": "t1", "status": 7}',
    "status unknown": b'{"_id": "t1", "status": "exploded"}',
    "model_name number": b'{"_id": "t1", "status": "ready", "model_name": 5}',
    "bad vector": (
        b'{"_id": "t1", "status": "ready", "video_embedding": {"segments": '
        b'[{"float": ["a", null], "embedding_option": "audio"}]}}'
    ),
    "bool vector": (
        b'{"_id": "t1", "status": "ready", "video_embedding": {"segments": '
        b'[{"float": [true, false]}]}}'
    ),
    "id missing": b'{"status": "ready"}',
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_answers_are_typed_errors(serve: Any, kind: str) -> None:
    async def api(request: web.Request) -> web.Response:
        return web.Response(body=MALFORMED[kind], content_type="application/json")

    server = await serve(api)
    async with AsyncClient("k", base_url=server.origin + "/v1.3", retry=FAST) as c:
        with pytest.raises(ResponseValidationError) as info:
            await c.embed.tasks.retrieve("t1")
    assert info.value.request_id == "req-1" and info.value.status == 200
    assert len(server.seen) == 1  # a malformed answer is not retried


@pytest.mark.parametrize(
    ("call", "body"),
    [
        ("create", b'{"_id": 5}'),
        ("create", b"null"),
        ("list", b'{"data": {"a": 1}}'),
        ("list", b'{"data": [], "page_info": {"page": "one"}}'),
        ("embed", b'{"model_name": ["x"]}'),
        ("embed", b"[]"),
    ],
)
async def test_every_call_checks_its_answer(serve: Any, call: str, body: bytes) -> None:
    async def api(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    server = await serve(api)
    async with AsyncClient("k", base_url=server.origin + "/v1.3", retry=FAST) as c:
        with pytest.raises(ResponseValidationError) as info:
            if call == "create":
                await c.embed.tasks.create(video_url="https://example.com/v.mp4")
            elif call == "list":
                await c.embed.tasks.list_page()
            else:
                await c.embed.create(text="hello")
    assert info.value.request_id == "req-1"


# -- size caps ----------------------------------------------------------------------


def _chunked(total: int, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "x-request-id": "req-1"}
        resp = web.StreamResponse(status=status, headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b" " * (1 << 20)
        sent = 0
        try:
            while sent < total:
                await resp.write(chunk)
                sent += len(chunk)
        except (ConnectionResetError, ConnectionError):
            return resp
        await resp.write_eof()
        return resp

    return handler


async def test_response_bodies_are_capped(serve: Any) -> None:
    big = 16 << 20

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b" " * big, content_type="application/json")

    limits = Limits(max_response_bytes=1 << 20)
    for handler in (sized, _chunked(big)):
        server = await serve(handler)
        async with AsyncClient("k", base_url=server.origin + "/v1.3", limits=limits) as c:
            with pytest.raises(ResponseTooLargeError) as info:
                await c.embed.tasks.status("t1")
        assert info.value.limit == 1 << 20 and info.value.request_id == "req-1"
        assert len(server.seen) == 1  # not retried

    # An error body is cut short, not refused: its status is what counts.
    server = await serve(_chunked(big, status=503))
    async with AsyncClient("k", base_url=server.origin + "/v1.3", retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(ServerError) as err:
            await c.embed.tasks.status("t1")
    assert err.value.status == 503 and len(err.value.message) <= 200


@pytest.mark.slow
async def test_a_1000_mb_answer_costs_no_memory(serve: Any) -> None:
    """Figure for the issue: before the cap the client read it whole (2.6 GB)."""
    server = await serve(_chunked(1000 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with AsyncClient("k", base_url=server.origin + "/v1.3") as c:
        with pytest.raises(ResponseTooLargeError):
            await c.embed.tasks.status("t1")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"1000 MB answer, default cap 512 MiB: peak RSS grew {grown_mb:.0f} MB")
    assert grown_mb < 1100


# -- messages for first-run mistakes -------------------------------------------------


async def test_refused_connection_names_the_real_url() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with AsyncClient("k", base_url=f"http://127.0.0.1:{port}/v1.3", retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(TransportError) as info:
            await c.embed.tasks.status("t1")
    text = str(info.value)
    assert f"http://127.0.0.1:{port}" in text and "ssl:default" not in text
    assert "is the server running" in text


async def test_missing_version_prefix_gets_a_hint(live_server: Any) -> None:
    root = live_server.base_url.removesuffix("/v1.3")
    async with AsyncClient(live_server.api_key, base_url=root) as c:
        with pytest.raises(NotFoundError) as info:
            await c.embed.tasks.status("a" * 24)
    assert f"{root}/v1.3" in info.value.message
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as c:
        with pytest.raises(NotFoundError) as real:
            await c.embed.tasks.status("a" * 24)
    assert "/v1.3'?" not in real.value.message  # a real 404 is not second-guessed
