"""The server's per-key media-duration budget (``--media-rate-limit``): refusals with
the contract's 429 and ``X-Ratelimit-Duration-*`` headers (v1 and v2), idempotent
replays and refused creates not debited, sync audio charged by its measured length,
a batch paced by both budgets with zero 429s, and the bucket shared through PostgreSQL.
"""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aioembed import AsyncClient, RateBudget, RetryPolicy
from aioembed.samples import retag
from aioembed.server import RateLimit, ServerConfig
from aioembed.server._config import parse_media_rate_limit
from aioembed.server._ratelimit import DURATION
from aioembed.v2 import Fixed

V1_TASKS = "embed/tasks"
V2_TASKS = "embed-v2/tasks"
ADMIN = "admin-key-medialimit"
DURATION_HEADERS = (
    "X-Ratelimit-Duration-Limit",
    "X-Ratelimit-Duration-Remaining",
    "X-Ratelimit-Duration-Reset",
)
CLIPS = {"segmentation": Fixed(7), "embedding_option": ["visual"], "embedding_scope": ["clip"]}


def _v1_form(video: Path) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("model_name", "Marengo-retrieval-2.7")
    form.add_field("video_clip_length", "4")
    form.add_field("video_file", video.read_bytes(), filename=video.name)
    return form


def _v2_body(video: Path) -> dict[str, Any]:
    return {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {
            "media_source": {"base64_string": base64.b64encode(video.read_bytes()).decode()},
            "segmentation": {"strategy": "fixed", "fixed": {"duration_sec": 4}},
        },
    }


async def _create(
    http: aiohttp.ClientSession, srv: Any, api: str, video: Path, **headers: str
) -> tuple[int, Any, Any]:
    hdrs = {**srv.headers, **headers}
    if api == "v1":
        request = http.post(srv.url(V1_TASKS), data=_v1_form(video), headers=hdrs)
    else:
        request = http.post(srv.url(V2_TASKS), json=_v2_body(video), headers=hdrs)
    async with request as r:
        return r.status, await r.json(), r.headers


def _remaining(headers: Any) -> int:
    return int(headers["X-Ratelimit-Duration-Remaining"])


def test_the_flag_is_media_minutes_per_window() -> None:
    assert parse_media_rate_limit("600/h") == RateLimit(36_000, 3600.0)
    assert parse_media_rate_limit("off") is None
    with pytest.raises(ValueError):
        parse_media_rate_limit("600/fortnight")
    from aioembed.server import _limit_options, _parser

    given = _limit_options(_parser().parse_args(["--media-rate-limit", "90/min"]))
    assert given == {"media_rate_limit": RateLimit(5400, 60.0)}
    assert _limit_options(_parser().parse_args([])) == {}
    with pytest.raises(SystemExit):
        _parser().parse_args(["--media-rate-limit", "lots"])


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_a_create_over_the_media_budget_is_refused(
    live_server_factory: Any, video_factory: Any, http: aiohttp.ClientSession, api: str
) -> None:
    """10 s of media per hour: a 4 s video, then another (2 s left), then the third
    is refused with 429, ``Retry-After`` and the API version's error body; neither the
    refusal nor an idempotent replay nor a create refused for another reason costs media."""
    srv = await live_server_factory(media_rate_limit=RateLimit(10, 3600.0))
    video = video_factory(duration=4, fps=5, seed=61)
    status, body, headers = await _create(http, srv, api, video, **{"Idempotency-Key": "one"})
    assert status == 200, body
    assert headers["X-Ratelimit-Duration-Limit"] == "10" and _remaining(headers) == 6
    reset = int(headers["X-Ratelimit-Duration-Reset"])
    assert time.time() + 4 * 360 - 2 <= reset <= time.time() + 4 * 360 + 2
    # A replay of the same key returns the first task and costs nothing.
    status, again, headers = await _create(http, srv, api, video, **{"Idempotency-Key": "one"})
    assert status == 200 and again["_id"] == body["_id"] and _remaining(headers) == 6
    # A create refused for another reason (a broken video) costs nothing either.
    broken = video_factory.file("broken.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 64)
    status, _, headers = await _create(http, srv, api, broken)
    assert status == 400 and _remaining(headers) == 6
    status, _, headers = await _create(http, srv, api, video)
    assert status == 200 and _remaining(headers) == 2
    status, refused, headers = await _create(http, srv, api, video)
    assert status == 429
    assert _remaining(headers) == 2  # the refusal took nothing
    # 2 s short at 10 s/h: 720 s.
    assert int(headers["Retry-After"]) == 720
    assert all(name in headers for name in DURATION_HEADERS)
    code = refused["code"] if api == "v1" else refused["error"]["code"]
    assert code == "too_many_requests"
    # The request budget is not configured: only the duration dimension is reported.
    assert "X-Ratelimit-Limit" not in headers
    async with http.get(srv.url(V1_TASKS if api == "v1" else V2_TASKS), headers=srv.headers) as r:
        listed = await r.json()
        assert r.status == 200 and _remaining(r.headers) == 2
    assert len(listed["data"]) == 2


async def test_a_url_input_is_charged_when_its_duration_is_known(
    live_server_factory: Any,
    video_factory: Any,
    static_server: Any,
    http: aiohttp.ClientSession,
    wait_until: Any,
) -> None:
    """A URL's duration is unknown at create: nothing is debited then; the worker's
    report of it is charged (accepted already, so whatever the bucket holds: 6 s of a
    4 s budget leaves a debt that refuses the next create)."""
    srv = await live_server_factory(media_rate_limit=RateLimit(4, 3600.0))
    url = static_server.add(video_factory(duration=6, fps=5, seed=62), "six.mp4")
    form = aiohttp.FormData()
    form.add_field("model_name", "Marengo-retrieval-2.7")
    form.add_field("video_url", url)
    async with http.post(srv.url(V1_TASKS), data=form, headers=srv.headers) as r:
        assert r.status == 200, await r.text()
        assert _remaining(r.headers) == 4
        task_id = (await r.json())["_id"]

    async def ready() -> bool:
        async with http.get(srv.url(f"{V1_TASKS}/{task_id}/status"), headers=srv.headers) as r:
            return bool((await r.json())["status"] == "ready")

    await wait_until(ready)
    async with http.get(srv.url(V1_TASKS), headers=srv.headers) as r:
        assert _remaining(r.headers) == 0
    assert srv.counts(status=429) == 0
    status, refused, headers = await _create(
        http, srv, "v1", video_factory(duration=4, fps=5, seed=61)
    )
    assert status == 429 and refused["code"] == "too_many_requests"


async def test_sync_audio_is_charged_its_measured_length(
    live_server_factory: Any, video_factory: Any, http: aiohttp.ClientSession
) -> None:
    srv = await live_server_factory(media_rate_limit=RateLimit(20, 3600.0))
    audio = video_factory.audio(duration=8, seed=34)
    body = {
        "input_type": "audio",
        "model_name": "marengo3.0",
        "audio": {
            "media_source": {"base64_string": base64.b64encode(audio.read_bytes()).decode()},
            "embedding_option": ["audio"],
        },
    }
    remaining = []
    for _ in range(2):
        async with http.post(srv.url("embed-v2"), json=body, headers=srv.headers) as r:
            assert r.status == 200, await r.text()
            remaining.append(_remaining(r.headers))
    assert remaining == [12, 4]
    form = aiohttp.FormData()
    form.add_field("model_name", "Marengo-retrieval-2.7")
    form.add_field("audio_file", audio.read_bytes(), filename=audio.name)
    async with http.post(srv.url("embed"), data=form, headers=srv.headers) as r:
        assert r.status == 200, await r.text()  # 4 s left: enough to start, then in debt
        assert _remaining(r.headers) == 0
    async with http.post(srv.url("embed-v2"), json=body, headers=srv.headers) as r:
        assert r.status == 429 and (await r.json())["error"]["code"] == "too_many_requests"


async def test_a_429_on_media_is_retried_after_retry_after(
    live_server_factory: Any, video_factory: Any
) -> None:
    """4 s of media per 2 s: the second 4 s video waits its Retry-After and succeeds."""
    srv = await live_server_factory(media_rate_limit=RateLimit(4, 2.0))
    video = video_factory(duration=4, fps=5, seed=61)
    async with AsyncClient(srv.api_key, base_url=srv.base_url) as client:
        for _ in range(2):
            await client.embed.tasks.create(
                "Marengo-retrieval-2.7", video_file=video, video_clip_length=4
            )
        window = client.rate_limits.duration if client.rate_limits else None
        assert window is not None and window.limit == 4
    assert srv.counts(status=429) == 1 and srv.counts(V1_TASKS_ROUTE, "POST", 200) == 2


V1_TASKS_ROUTE = "/v1.3/embed/tasks"


async def _server_429s(http: aiohttp.ClientSession, srv: Any) -> int:
    async with http.get(srv.url("metrics"), headers={"x-api-key": ADMIN}) as r:
        assert r.status == 200
        body = await r.json()
    return sum(row["count"] for row in body["requests"] if row["status"] == 429)


async def test_a_batch_paced_by_both_budgets_sees_no_429(
    live_server_factory: Any, video_factory: Any, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A server limited to 120 requests/min (a burst of 4) and 240 media minutes/hour
    (8 s at once, 4 s/s): 6 videos of 4 s through ``embed_many`` with the matching
    budget, a 429 failing its item (no retries). Zero 429s at the server (its /metrics),
    and both budgets held: what the server received fits burst + rate x time."""
    rate, burst, media_rate, media = 2.0, 4, 4.0, 8
    srv = await live_server_factory(
        rate_limit=RateLimit(burst, burst / rate),
        media_rate_limit=RateLimit(media, media / media_rate),
        admin_keys=(ADMIN,),
        # A cold probe process delays one create's debit by seconds (creates queued
        # behind it are then debited together): pacing is about a warm server.
        prestart_workers=True,
    )
    base = video_factory(duration=4, fps=5, seed=61)
    paths = [retag(base, tmp_path / f"m{i}.mp4", f"m{i}") for i in range(6)]
    budget = RateBudget(
        requests_per_minute=60 * rate,
        request_burst=burst,
        media_minutes_per_hour=60 * media_rate,
        media_burst_minutes=media / 60,
    )
    strict = RetryPolicy(attempts=1)
    async with AsyncClient(srv.api_key, base_url=srv.base_url, retry=strict) as client:
        started = time.monotonic()
        async with client.embed.tasks.embed_many(
            paths, budget=budget, sleep_interval=0.3, api="v2", **CLIPS
        ) as stream:
            outcomes = [o async for o in stream]
        elapsed = time.monotonic() - started
        seen = client.rate_limits
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert await _server_429s(http, srv) == 0
    sent = srv.counts(route=None) - 1  # the /metrics read itself
    assert sent <= burst + rate * elapsed, (sent, elapsed)
    total = 4.0 * len(paths)
    assert total <= media + media_rate * elapsed
    assert elapsed >= (total - media) / media_rate  # paced, not sent at once
    assert seen is not None and seen.duration is not None and seen.duration.limit == media
    print(
        f"media-paced batch of {len(paths)}: {sent} requests, {total:g} media-s in "
        f"{elapsed:.1f} s (budgets {burst} + {rate:g}/s, {media} + {media_rate:g} s/s), 0 429s"
    )


async def test_the_media_budget_is_shared_through_postgresql(postgres_dsn: str) -> None:
    """Two replicas' limiters on one database see one bucket per key."""
    from aioembed.server._pg_ratelimit import PostgresRateLimiter

    limit = RateLimit(10, 3600.0)
    schema = f"m_{int(time.time() * 1000) % 10**9}"
    async with (
        PostgresRateLimiter(limit, postgres_dsn, schema=schema, dimension=DURATION) as a,
        PostgresRateLimiter(limit, postgres_dsn, schema=schema, dimension=DURATION) as b,
        PostgresRateLimiter(limit, postgres_dsn, schema=schema) as requests,
    ):
        assert (await a.debit("k", 4.0)).remaining == 6
        assert (await b.debit("k", 4.0)).remaining == 2
        refused = await a.debit("k", 4.0)
        assert not refused.allowed and refused.remaining == 2
        assert refused.retry_after == math.ceil(2 * 360)
        assert refused.headers()["X-Ratelimit-Duration-Remaining"] == "2"
        await b.adjust("k", 4.0)  # a refund seen by the other replica
        assert (await a.debit("k", 0.0)).remaining == 6
        # The request bucket of the same key is apart.
        assert (await requests.acquire("k")).remaining == 9
        # A debit over the whole capacity passes on a full bucket and leaves it in debt.
        assert (await b.debit("other", 25.0)).allowed
        assert not (await a.debit("other", 1.0)).allowed


def test_config_defaults_to_no_media_budget() -> None:
    assert ServerConfig().media_rate_limit is None
