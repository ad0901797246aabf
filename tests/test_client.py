"""The SDK against the real local server over loopback."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from aioembed import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    Limits,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    RequestTimeoutError,
    RetryPolicy,
    ServerError,
    TaskStatus,
    Timeouts,
    TransportError,
    WaitTimeoutError,
)

TASKS = "/v1.3/embed/tasks"
FAST = RetryPolicy(initial_delay=0.01, max_delay=0.2, budget=10)


async def test_create_wait_retrieve(client: AsyncClient, video_factory: Any) -> None:
    video = video_factory(duration=13, seed=11)
    sent: list[tuple[int, int | None]] = []
    task = await client.embed.tasks.create(
        video_file=video,
        video_clip_length=6,
        video_embedding_scope=["clip", "video"],
        progress=lambda s, t: sent.append((s, t)),
    )
    assert len(task.id) == 24
    assert sent[-1] == (video.stat().st_size, video.stat().st_size)

    updates = [s async for s in task.wait_for_done(sleep_interval=0.05)]
    assert updates[-1].status is TaskStatus.READY
    assert all(u.status is TaskStatus.PROCESSING for u in updates[:-1])

    result = await task.retrieve()
    assert result.status is TaskStatus.READY
    assert result.metadata is not None and result.metadata.duration == pytest.approx(13, abs=0.2)
    spans = [
        (s.embedding_option, s.embedding_scope, s.start_offset_sec, s.end_offset_sec)
        for s in result.segments
    ]
    assert ("visual-text", "clip", 0.0, 6.0) in spans
    assert ("audio", "clip", 6.0, 12.0) in spans
    assert {s.embedding_scope for s in result.segments} == {"clip", "video"}
    [whole] = result.video_embedding.select(option="audio", scope="video")  # type: ignore[union-attr]
    assert (whole.start_offset_sec, whole.end_offset_sec) == (0.0, result.metadata.duration)
    matrix = result.video_embedding.matrix(option="visual-text", scope="clip")  # type: ignore[union-attr]
    assert matrix.shape == (2, 1024) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)

    audio_only = await client.embed.tasks.retrieve(task.id, embedding_option=["audio"])
    assert {s.embedding_option for s in audio_only.segments} == {"audio"}
    status = await task.status()
    assert status.id == task.id and status.model_name == "Marengo-retrieval-2.7"


@pytest.mark.parametrize("kind", ["bytes", "file", "aiter"])
async def test_upload_sources(client: AsyncClient, video_factory: Any, kind: str) -> None:
    path = video_factory(duration=5, seed=12)
    data = path.read_bytes()
    source: Any
    if kind == "bytes":
        source = data
    elif kind == "file":
        source = io.BytesIO(b"junk" + data)
        source.seek(4)  # uploads from the current position

    else:

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        source = chunks()
    task = await client.embed.tasks.create(video_file=source)
    final = await task.wait(sleep_interval=0.05)
    assert final.status is TaskStatus.READY


async def test_wait_callbacks_sync_and_async(client: AsyncClient, video_factory: Any) -> None:
    task = await client.embed.tasks.create(video_file=video_factory(duration=5, seed=13))
    seen: list[str] = []

    async def async_cb(t: Any) -> None:
        seen.append("a:" + t.status.value)

    final = await task.wait(sleep_interval=0.05, callback=async_cb)
    await client.embed.tasks.wait(task.id, sleep_interval=0.05, callback=lambda t: seen.append("s"))
    assert final.status is TaskStatus.READY
    assert seen[-2:] == ["a:ready", "s"]


async def test_list_walks_pages(client: AsyncClient, live_server: Any, video_factory: Any) -> None:
    video = video_factory(duration=5, seed=14)
    ids = {(await client.embed.tasks.create(video_file=video)).id for _ in range(5)}
    before = live_server.counts(TASKS, "GET")
    listed = [t.id async for t in client.embed.tasks.list(page_limit=2)]
    assert set(listed) == ids and len(listed) == 5
    assert live_server.counts(TASKS, "GET") - before == 3  # pages of 2, 2, 1
    page = await client.embed.tasks.list_page(page=9, page_limit=2)
    assert page.data == [] and page.page_info is not None and page.page_info.total_results == 5


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"video_clip_length": 1}, "parameter_invalid", "video_clip_length"),
        ({"video_clip_length": 10.5}, "parameter_invalid", "video_clip_length"),
        (
            {"video_start_offset_sec": 5, "video_end_offset_sec": 5},
            "parameter_invalid",
            "video_end_offset_sec",
        ),
        (
            {"video_start_offset_sec": 0, "video_end_offset_sec": 4, "video_clip_length": 6},
            "parameter_invalid",
            "video_end_offset_sec",
        ),
        ({"video_embedding_scope": ["scene"]}, "parameter_invalid", "video_embedding_scope"),
        ({"video_start_offset_sec": -1}, "parameter_invalid", "video_start_offset_sec"),
        ({"video_file": None}, "parameter_not_provided", "video_file"),
        ({"video_file": "/no/such/file.mp4"}, "parameter_invalid", "video_file"),
        ({"model_name": ""}, "parameter_not_provided", "model_name"),
    ],
)
async def test_validation_before_any_byte(
    client: AsyncClient,
    live_server: Any,
    video_factory: Any,
    kwargs: dict[str, Any],
    code: str,
    param: str,
) -> None:
    args: dict[str, Any] = {"video_file": video_factory(duration=5, seed=12)} | kwargs
    with pytest.raises(ParameterError) as info:
        await client.embed.tasks.create(**args)
    assert info.value.code == code and info.value.status == 400
    assert param in info.value.message
    assert live_server.counts() == 0


async def test_local_and_server_checks_agree(
    client: AsyncClient, live_server: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    """The same bad clip length gets the same code and message from both ends."""
    with pytest.raises(ParameterError) as local:
        await client.embed.tasks.create(video_file=video_factory(duration=5), video_clip_length=11)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model_name", "Marengo-retrieval-2.7")
    form.add_field("video_clip_length", "11")
    form.add_field("video_file", b"x" * 10, filename="a.mp4")
    async with http.post(
        live_server.url("embed/tasks"), data=form, headers=live_server.headers
    ) as r:
        body = await r.json()
    assert (r.status, body["code"], body["message"]) == (400, local.value.code, local.value.message)


async def test_oversized_file_refused_locally(live_server: Any, video_factory: Any) -> None:
    async with AsyncClient(
        live_server.api_key, base_url=live_server.base_url, limits=Limits(max_upload_bytes=1000)
    ) as c:
        with pytest.raises(PayloadTooLargeError) as info:
            await c.embed.tasks.create(video_file=video_factory(duration=5))
    assert info.value.code == "video_filesize_too_large" and info.value.status == 413
    assert live_server.counts() == 0


async def test_server_errors_are_typed(
    client: AsyncClient, live_server: Any, video_factory: Any
) -> None:
    with pytest.raises(NotFoundError) as nf:
        await client.embed.tasks.status("0" * 24)
    assert nf.value.code == "resource_not_exist" and nf.value.request_id
    with pytest.raises(BadRequestError) as bad:
        await client.embed.tasks.create("no-such-model", video_file=video_factory(duration=5))
    assert bad.value.code == "parameter_invalid" and "model_name" in bad.value.message
    with pytest.raises(BadRequestError) as broken:
        await client.embed.tasks.create(video_file=b"\0" * 5000)
    assert broken.value.code == "video_file_broken"
    task = await client.embed.tasks.create(video_file=video_factory(duration=5))
    with pytest.raises(BadRequestError) as opt:
        await client.embed.tasks.retrieve(task.id, embedding_option=["visual"])
    assert opt.value.code == "parameter_invalid"
    async with AsyncClient("wrong-key", base_url=live_server.base_url) as wrong:
        with pytest.raises(AuthenticationError) as auth:
            await wrong.embed.tasks.status(task.id)
        assert auth.value.code == "api_key_invalid" and auth.value.status == 401
        with pytest.raises(AuthenticationError):  # 401 is not retried, and raised at once
            async for _ in wrong.embed.tasks.wait_for_done(task.id):
                pass


async def test_sync_embed(client: AsyncClient, video_factory: Any) -> None:
    text = await client.embed.create(text="a red ball bouncing")
    assert text.model_name == "Marengo-retrieval-2.7" and text.text_embedding is not None
    v = text.embedding.array()
    assert v.shape == (1024,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    image = await client.embed.create(image_file=video_factory.image(seed=3))
    assert image.image_embedding is not None and image.embedding.array().shape == (1024,)
    audio = await client.embed.create(audio_file=video_factory.audio(duration=12, seed=3))
    assert audio.audio_embedding is not None and len(audio.embedding.segments) >= 1
    with pytest.raises(ParameterError) as none:
        await client.embed.create()
    assert none.value.code == "parameter_not_provided"
    with pytest.raises(ParameterError):
        await client.embed.create(text="x", image_url="http://127.0.0.1/x.png")


async def test_wait_timeout(client: AsyncClient, video_factory: Any) -> None:
    task = await client.embed.tasks.create(video_file=video_factory(duration=20, seed=15))
    with pytest.raises(WaitTimeoutError) as info:
        async for _ in task.wait_for_done(sleep_interval=5, timeout=0.3):
            pass
    assert info.value.task_id == task.id


async def test_client_lifecycle(live_server: Any) -> None:
    client = AsyncClient(live_server.api_key, base_url=live_server.base_url)
    with pytest.raises(NotFoundError):  # opens its session lazily without `async with`
        await client.embed.tasks.status("f" * 24)
    await client.aclose()
    await client.aclose()  # idempotent
    with pytest.raises(ClientClosedError):
        await client.embed.tasks.status("f" * 24)

    async with aiohttp.ClientSession() as session:
        async with AsyncClient(live_server.api_key, base_url=live_server.base_url, session=session):
            pass
        assert not session.closed  # borrowed, never closed

    monkey = {"AIOEMBED_API_KEY": live_server.api_key, "AIOEMBED_BASE_URL": live_server.base_url}
    old = {k: os.environ.get(k) for k in monkey}
    os.environ.update(monkey)
    try:
        async with AsyncClient.from_env() as env_client:
            assert env_client.base_url == live_server.base_url
            assert [t async for t in env_client.embed.tasks.list()] == []
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- retries, timeouts and cancellation ------------------------------------------------


class FlakyProxy:
    """Answers the first ``failures`` requests itself (503 or 429), then forwards to the real server."""

    def __init__(self, upstream: str, failures: int, status: int, retry_after: str | None) -> None:
        self.upstream = upstream.removesuffix("/v1.3")
        self.failures = failures
        self.status = status
        self.retry_after = retry_after
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # the whole body arrived intact each time
        self.seen.append((request.method, request.headers.get("Idempotency-Key")))
        if len(self.seen) <= self.failures:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            code = "too_many_requests" if self.status == 429 else "internal_error"
            return web.json_response(
                {"code": code, "message": "try later"}, status=self.status, headers=headers
            )
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                self.upstream + request.path_qs,
                data=body,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as r,
        ):
            return web.Response(
                body=await r.read(), status=r.status, content_type="application/json"
            )


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1.3"


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, "0.2")])
async def test_create_retried_without_duplicates(
    live_server: Any, video_factory: Any, status: int, retry_after: str | None
) -> None:
    proxy = FlakyProxy(live_server.base_url, failures=2, status=status, retry_after=retry_after)
    runner, url = await _serve(proxy.handle)
    try:
        async with AsyncClient(live_server.api_key, base_url=url, retry=FAST) as c:
            loop = asyncio.get_running_loop()
            started = loop.time()
            task = await c.embed.tasks.create(video_file=video_factory(duration=5, seed=16))
            if retry_after:
                assert loop.time() - started >= 2 * 0.2  # Retry-After honoured
            assert (
                await c.embed.tasks.wait(task.id, sleep_interval=0.05)
            ).status is TaskStatus.READY
    finally:
        await runner.cleanup()
    keys = {key for method, key in proxy.seen if method == "POST"}
    assert len([m for m, _ in proxy.seen if m == "POST"]) == 3 and len(keys) == 1
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as c:
        assert [t.id async for t in c.embed.tasks.list()] == [task.id]  # one task, no duplicate


async def test_create_not_retried_when_unsafe(live_server: Any, video_factory: Any) -> None:
    proxy = FlakyProxy(live_server.base_url, failures=2, status=503, retry_after=None)
    runner, url = await _serve(proxy.handle)
    try:
        policy = RetryPolicy(initial_delay=0.01, idempotency_keys=False)
        async with AsyncClient(live_server.api_key, base_url=url, retry=policy) as c:
            with pytest.raises(ServerError) as info:
                await c.embed.tasks.create(video_file=video_factory(duration=5))
            assert info.value.status == 503
            with pytest.raises(NotFoundError):  # GETs are retried past the 503
                await c.embed.tasks.status("a" * 24)
    finally:
        await runner.cleanup()
    assert [m for m, _ in proxy.seen] == ["POST", "GET", "GET"]


async def test_transport_errors_are_wrapped() -> None:
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    policy = RetryPolicy(attempts=2, initial_delay=0.01)
    async with AsyncClient("k", base_url=f"http://127.0.0.1:{port}/v1.3", retry=policy) as c:
        with pytest.raises(TransportError) as info:
            await c.embed.tasks.status("a" * 24)
    assert not isinstance(info.value, aiohttp.ClientError)


async def test_stalled_server_times_out() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    runner, url = await _serve(stall)
    try:
        timeouts = Timeouts(read=0.2, request=5)
        async with AsyncClient(
            "k", base_url=url, timeouts=timeouts, retry=RetryPolicy(attempts=1)
        ) as c:
            with pytest.raises(RequestTimeoutError):
                await c.embed.tasks.status("a" * 24)
    finally:
        release.set()
        await runner.cleanup()


async def test_cancellation_leaves_nothing_running(client: AsyncClient, video_factory: Any) -> None:
    task = await client.embed.tasks.create(video_file=video_factory(duration=20, seed=17))

    async def poll() -> None:
        async for _ in task.wait_for_done(sleep_interval=0.05):
            pass

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0.2)
    poller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poller
    assert _client_tasks() == []


async def test_cancelled_upload_closes_file_and_creates_nothing(
    live_server: Any, tmp_path: Path
) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: large enough to be mid-upload when cancelled
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as c:
        progressed = asyncio.Event()

        def progress(sent: int, total: int | None) -> None:
            progressed.set()

        upload = asyncio.create_task(c.embed.tasks.create(video_file=big, progress=progress))
        await progressed.wait()
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
    assert _client_tasks() == []
    opened = [p for p in Path(f"/proc/{os.getpid()}/fd").iterdir() if _target(p) == str(big)]
    assert opened == []
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url) as c:
        assert [t async for t in c.embed.tasks.list()] == []


def _client_tasks() -> list[asyncio.Task[Any]]:
    """Tasks started by the SDK or this test (the in-process server's own are not ours)."""
    ours = ("aioembed/client", "tests/test_client")
    found = []
    for t in asyncio.all_tasks():
        code = getattr(t.get_coro(), "cr_code", None)
        if t is not asyncio.current_task() and code and any(o in code.co_filename for o in ours):
            found.append(t)
    return found


def _target(p: Path) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return ""


async def test_bounded_concurrency(live_server: Any, video_factory: Any) -> None:
    """Gathering many creates never exceeds the client's upload and connection limits."""
    video = video_factory(duration=5, seed=18)
    active = peak = 0

    def progress(sent: int, total: int | None) -> None:
        nonlocal active, peak
        if sent <= 512 * 1024:  # first chunk of an upload
            active += 1
            peak = max(peak, active)
        if sent == total:
            active -= 1

    limits = Limits(max_uploads=2, max_connections=4)
    async with AsyncClient(live_server.api_key, base_url=live_server.base_url, limits=limits) as c:
        handles = await asyncio.gather(
            *(c.embed.tasks.create(video_file=video, progress=progress) for _ in range(12))
        )
    assert len({h.id for h in handles}) == 12
    assert 1 <= peak <= 2


@pytest.mark.parametrize(
    "inputs",
    [{}, {"text": "a red ball", "image_url": "http://127.0.0.1/x.png"}],
    ids=["none", "two"],
)
async def test_embed_input_rule_agrees_with_the_server(
    client: AsyncClient, live_server: Any, http: aiohttp.ClientSession, inputs: dict[str, str]
) -> None:
    """Zero or two inputs to POST /embed: same code and message from both ends."""
    with pytest.raises(ParameterError) as local:
        await client.embed.create(**inputs)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model_name", "Marengo-retrieval-2.7")
    for name, value in inputs.items():
        form.add_field(name, value)
    async with http.post(live_server.url("embed"), data=form, headers=live_server.headers) as r:
        body = await r.json()
    assert (r.status, body["code"], body["message"]) == (400, local.value.code, local.value.message)


def test_one_set_of_defaults() -> None:
    """Every wait starts at the same interval and embed_many's window is the CLI's."""
    import inspect

    from aioembed.cli._args import _parser
    from aioembed.client import (
        DEFAULT_CONCURRENCY,
        DEFAULT_MAX_INTERVAL,
        DEFAULT_SLEEP_INTERVAL,
        EmbedTasks,
        TaskHandle,
    )

    def default(fn: Any, name: str) -> Any:
        return inspect.signature(fn).parameters[name].default

    for fn in (
        EmbedTasks.wait_for_done,
        EmbedTasks.wait,
        EmbedTasks.embed_many,
        EmbedTasks.watch_many,
        TaskHandle.wait,
        TaskHandle.wait_for_done,
    ):
        assert default(fn, "sleep_interval") == DEFAULT_SLEEP_INTERVAL, fn
        assert default(fn, "max_interval") == DEFAULT_MAX_INTERVAL, fn
    assert default(EmbedTasks.embed_many, "concurrency") == DEFAULT_CONCURRENCY
    embed = _parser().parse_args(["embed", "x.mp4"])
    assert embed.concurrency in (None, DEFAULT_CONCURRENCY)  # None: the SDK's default
    names = set(inspect.signature(EmbedTasks.embed_many).parameters)
    assert {"video_clip_length", "video_embedding_scope", "embedding_option"} <= names
    assert not {"clip_length", "scopes", "options"} & names
