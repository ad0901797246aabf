"""Security: keys, tenants, file names, paths, URL inputs (SSRF), oversized and slow requests.

Every request goes to a real ``python -m aioembed.server`` on loopback, most of them
as raw bytes so no client library tidies them up first. URL inputs are only ever
loopback forms: the server must refuse them before connecting anywhere.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _faults import assert_contract_error

from aioembed.server._urlfetch import UrlPolicy

MODEL = "Marengo-retrieval-2.7"
KEY_B = "key-b-0123456789"


@pytest.fixture
def srv(server_process: Any, tmp_path: Path) -> Any:
    return server_process(tmp_path / "sec-data", "--api-key", KEY_B, "--max-upload-bytes", "1M")


async def raw(srv: Any, request: bytes, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    """Send raw bytes, return (status, parsed JSON body, headers) of the answer."""
    host, port = srv.base_url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k:
                headers[k.strip().lower()] = v.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        return int(lines[0].split()[1]), json.loads(body), headers
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


class Hdrs(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def form(
    fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for k, v in fields.items():
        data.add_field(k, v)
    for k, (name, blob) in (files or {}).items():
        data.add_field(k, io.BytesIO(blob), filename=name, content_type="video/mp4")
    return data


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kw: Any
) -> tuple[int, Any, Any]:
    async with http.request(method, url, **kw) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json(), resp.headers


# -- keys --------------------------------------------------------------------------------------


async def test_every_route_needs_a_valid_key(
    srv: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    video = video_factory(duration=4, fps=5, seed=101).read_bytes()
    status, body, _ = await call(
        http,
        "POST",
        srv.url("embed/tasks"),
        headers=srv.headers,
        data=form({"model_name": MODEL}, {"video_file": ("v.mp4", video)}),
    )
    assert status == 200, body
    task_id = body["_id"]
    big = video + b"\0" * (900_000 - len(video))
    routes: list[tuple[str, str, Any]] = [
        ("GET", "embed/tasks", None),
        ("GET", f"embed/tasks/{task_id}/status", None),
        ("GET", f"embed/tasks/{task_id}", None),
        ("GET", "metrics", None),
        (
            "POST",
            "embed/tasks",
            lambda: form({"model_name": MODEL}, {"video_file": ("b.mp4", big)}),
        ),
        ("POST", "embed", lambda: form({"model_name": MODEL, "text": "hello"})),
        ("DELETE", f"embed/tasks/{task_id}", None),
        ("GET", "no/such/route", None),
    ]
    wrong_keys: list[dict[str, str]] = [
        {},
        {"x-api-key": ""},
        {"x-api-key": "wrong"},
        {"x-api-key": srv.api_key.upper()},
        {"x-api-key": srv.api_key[:-1]},
        {"x-api-key": srv.api_key + "x"},
        {"Authorization": f"Bearer {srv.api_key}"},
        {"x-api-key": f"{srv.api_key},{KEY_B}"},
    ]
    for method, path, data in routes:
        for headers in wrong_keys:
            status, body, hdrs = await call(
                http, method, srv.url(path), headers=headers, data=data() if data else None
            )
            assert status == 401 and body["code"] == "api_key_invalid", (method, path, headers)
            assert_contract_error(status, body, hdrs)
            sent = headers.get("x-api-key") or headers.get("Authorization") or ""
            assert not sent or sent not in body["message"]  # never echoed
        # The key in the query string is not a key either.
        status, body, _ = await call(http, method, srv.url(path) + f"?api_key={srv.api_key}")
        assert status == 401, (method, path)
    # Header names are case-insensitive (HTTP): that is the same valid key.
    assert (await call(http, "GET", srv.url("embed/tasks"), headers={"X-API-KEY": srv.api_key}))[
        0
    ] == 200
    # What needs no key: health and the API description only.
    for path in ("/health", "/v1.3/health", "/v1.3/openapi.json"):
        assert (await call(http, "GET", srv.base_url.removesuffix("/v1.3") + path))[0] == 200
    # Refused uploads left nothing: one task, no stored upload.
    _, listing, _ = await call(http, "GET", srv.url("embed/tasks"), headers=srv.headers)
    assert [t["_id"] for t in listing["data"]] == [task_id]
    assert list((srv.data_dir / "uploads").iterdir()) == []
    # And the server never wrote a key to its log.
    log = srv.log_tail(10**6)
    assert srv.api_key not in log and KEY_B not in log


async def test_tenants_are_isolated(
    srv: Any, http: aiohttp.ClientSession, video_factory: Any
) -> None:
    video = video_factory(duration=4, fps=5, seed=102).read_bytes()
    a = srv.headers
    b = {"x-api-key": KEY_B}

    async def create(headers: dict[str, str]) -> Any:
        status, body, _ = await call(
            http,
            "POST",
            srv.url("embed/tasks"),
            headers={**headers, "Idempotency-Key": "same"},
            data=form({"model_name": MODEL}, {"video_file": ("v.mp4", video)}),
        )
        assert status == 200, body
        return body["_id"]

    mine = await create(a)
    theirs = await create(b)
    assert theirs != mine  # another key's Idempotency-Key never returns my task
    assert await create(a) == mine and await create(b) == theirs
    missing = "0" * 24
    for path in ("embed/tasks/{}", "embed/tasks/{}/status"):
        s1, other, _ = await call(http, "GET", srv.url(path.format(mine)), headers=b)
        s2, absent, _ = await call(http, "GET", srv.url(path.format(missing)), headers=b)
        # Another key's task looks exactly like no task at all (never 403).
        assert s1 == s2 == 404 and other["code"] == absent["code"] == "resource_not_exist"
        assert other["message"].replace(mine, "ID") == absent["message"].replace(missing, "ID")
    for headers, own in ((a, mine), (b, theirs)):
        _, listing, _ = await call(http, "GET", srv.url("embed/tasks"), headers=headers)
        assert [t["_id"] for t in listing["data"]] == [own]
        assert listing["page_info"]["total_results"] == 1


# -- file names and paths ------------------------------------------------------------------------

TRAVERSAL_NAMES = [
    "../../evil.mp4",
    "../../../../../../tmp/evil.mp4",
    "..\\..\\evil.mp4",
    "/etc/passwd",
    "C:\\Windows\\evil.mp4",
    "%2e%2e%2f%2e%2e%2fevil.mp4",
    "..%2F..%2Fevil.mp4",
    "....//....//evil.mp4",
    "dir/../../evil.mp4",
    "\u202eevil.mp4",
    "." * 300,
    "n" * 1000 + ".mp4",
    "..",
]


async def test_traversal_file_names_are_stored_safely(
    srv: Any, http: aiohttp.ClientSession, video_factory: Any, tmp_path: Path
) -> None:
    video = video_factory(duration=4, fps=5, seed=103).read_bytes()
    before = {p for p in tmp_path.rglob("*")}
    ids = {}
    for name in TRAVERSAL_NAMES:
        data = aiohttp.FormData()
        data.add_field("model_name", MODEL)
        data.add_field("video_file", io.BytesIO(video), filename=name)
        status, body, _ = await call(
            http, "POST", srv.url("embed/tasks"), headers=srv.headers, data=data
        )
        assert status == 200, (name, body)
        ids[name] = body["_id"]
    # A NUL or other control byte in the part's headers is refused (400), not a 500.
    crafted = (
        b'--b\r\nContent-Disposition: form-data; name="model_name"\r\n\r\n'
        + MODEL.encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="video_file"; filename="a\x00/../x.mp4"\r\n\r\n'
        + video
        + b"\r\n--b--\r\n"
    )
    status, body, headers = await raw(
        srv,
        b"POST /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nx-api-key: "
        + srv.api_key.encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: "
        + str(len(crafted)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + crafted,
    )
    assert status == 400 and body["code"] == "parameter_invalid", body
    assert_contract_error(status, body, Hdrs(headers))

    for name, task_id in ids.items():
        final = await finished(http, srv, task_id)
        assert final["status"] == "ready", (name, final)
        shown = final["video_embedding"]["metadata"]["input_filename"]
        assert shown is None or (
            "/" not in shown
            and "\\" not in shown
            and shown not in (".", "..")
            and not re.search(r"[\x00-\x1f\x7f]", shown)
            and len(shown) <= 255
        ), (name, shown)
    # Nothing was written outside the data directory, and inside it only the server's files.
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if srv.data_dir not in p.parents and p != srv.data_dir]
    assert all(p.parent.name.startswith("server-logs") for p in outside), outside
    layout = {p.relative_to(srv.data_dir).as_posix() for p in srv.data_dir.rglob("*")}
    assert layout <= {
        "aioembed.sqlite3",
        "aioembed.sqlite3-wal",
        "aioembed.sqlite3-shm",
        "server.lock",
        "media",
        "uploads",
        *_ASSET_FILES,
    }, layout
    assert not list(Path("/tmp").glob("evil.mp4"))


#: The asset and multipart-upload stores' own files (empty here: no asset was made).
_ASSET_FILES = (
    "assets",
    "parts",
    "upload-secret",
    *(f"{db}.sqlite3{suffix}" for db in ("assets", "uploads") for suffix in ("", "-wal", "-shm")),
)


async def finished(http: aiohttp.ClientSession, srv: Any, task_id: str, timeout: float = 60) -> Any:
    """The task's status once it is no longer processing (polled with a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, body, _ = await call(
            http, "GET", srv.url(f"embed/tasks/{task_id}/status"), headers=srv.headers
        )
        if body["status"] != "processing":
            return body
        assert asyncio.get_running_loop().time() < deadline, f"{task_id} still processing"
        await asyncio.sleep(0.05)


async def test_task_ids_in_paths_cannot_escape(srv: Any) -> None:
    key = srv.api_key.encode()
    for target in (
        b"/v1.3/embed/tasks/..%2F..%2F..%2Fetc%2Fpasswd/status",
        b"/v1.3/embed/tasks/%2e%2e/status",
        b"/v1.3/embed/tasks/%252e%252e%252f/status",
        b"/v1.3/embed/tasks/../../../../etc/passwd",
        b"/v1.3/embed/tasks/aioembed.sqlite3",
        b"/v1.3/embed/tasks/%00",
        b"/v1.3/../../etc/passwd",
    ):
        status, body, headers = await raw(
            srv,
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: x\r\nx-api-key: "
            + key
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert status in (400, 404), (target, status, body)
        assert_contract_error(status, body, Hdrs(headers))
        assert "root:" not in json.dumps(body) and "SQLite" not in json.dumps(body)


# -- URL inputs: no server-side request to loopback (or any private address) -------------------


def test_url_policy_judges_ipv6_forms_of_private_addresses() -> None:
    """The destination check, without any network: IPv6 spellings that reach a private
    IPv4 address (NAT64, 6to4, IPv4-compatible, SIIT, mapped) are as private as it is."""
    policy = UrlPolicy()
    for text in (
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "fe80::1",
        "fc00::1",
        "2001::1",
        "ff02::1",
        "224.0.0.1",
    ):
        assert not policy.ip_allowed(ipaddress.ip_address(text)), text
    for text in ("8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::"):
        assert policy.ip_allowed(ipaddress.ip_address(text)), text
    loopback = UrlPolicy.from_entries(["127.0.0.0/8", "::1"])
    assert loopback.ip_allowed(ipaddress.ip_address("::1"))
    assert loopback.ip_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not loopback.ip_allowed(ipaddress.ip_address("169.254.169.254"))


async def test_url_inputs_to_loopback_are_refused_without_an_allow_list(
    srv: Any, http: aiohttp.ClientSession, static_server: Any, video_factory: Any
) -> None:
    test_url_policy_judges_ipv6_forms_of_private_addresses()  # never reach the network below
    url = static_server.add(video_factory(duration=4, fps=5, seed=104), "x.mp4")
    port = url.split(":")[2].split("/")[0]
    loopbacks = [
        url,
        f"http://127.1:{port}/files/x.mp4",
        f"http://2130706433:{port}/files/x.mp4",
        f"http://0x7f000001:{port}/files/x.mp4",
        f"http://0177.0.0.1:{port}/files/x.mp4",
        f"http://0:{port}/files/x.mp4",
        f"http://localhost:{port}/files/x.mp4",
        f"http://user:pw@127.0.0.1:{port}/files/x.mp4",
        f"http://[::1]:{port}/files/x.mp4",
        f"http://[0:0:0:0:0:0:0:1]:{port}/files/x.mp4",
        f"http://[::ffff:127.0.0.1]:{port}/files/x.mp4",
        f"http://[::127.0.0.1]:{port}/files/x.mp4",
        f"http://[::ffff:0:7f00:1]:{port}/files/x.mp4",
        f"http://[64:ff9b::7f00:1]:{port}/files/x.mp4",
        f"http://[2002:7f00:1::]:{port}/files/x.mp4",
        f"https://127.0.0.1:{port}/files/x.mp4",
    ]
    for target in loopbacks:
        status, body, hdrs = await call(
            http,
            "POST",
            srv.url("embed/tasks"),
            headers=srv.headers,
            data=form({"model_name": MODEL, "video_url": target}),
        )
        assert status == 400 and body["code"] == "parameter_invalid", (target, body)
        assert "video_url" in body["message"], (target, body)
        assert_contract_error(status, body, hdrs)
        for field in ("image_url", "audio_url"):
            status, body, _ = await call(
                http,
                "POST",
                srv.url("embed"),
                headers=srv.headers,
                data=form({"model_name": MODEL, field: target}),
            )
            assert status == 400 and field in body["message"], (target, field, body)
    for target in (
        "file:///etc/passwd",
        "ftp://127.0.0.1/x.mp4",
        "gopher://127.0.0.1:70/",
        "data:video/mp4;base64,AAAA",
        "//127.0.0.1/x.mp4",
    ):
        status, body, _ = await call(
            http,
            "POST",
            srv.url("embed/tasks"),
            headers=srv.headers,
            data=form({"model_name": MODEL, "video_url": target}),
        )
        assert status == 400 and "video_url" in body["message"], (target, body)
    assert sum(static_server.hits.values()) == 0  # the server never connected
    _, listing, _ = await call(http, "GET", srv.url("embed/tasks"), headers=srv.headers)
    assert listing["data"] == []


# -- oversized and slow requests ---------------------------------------------------------------


async def test_oversized_requests_are_refused(srv: Any) -> None:
    key = srv.api_key.encode()
    base = b"Host: x\r\nx-api-key: " + key + b"\r\nConnection: close\r\n"
    cases: list[tuple[str, bytes, set[int]]] = [
        (
            "request line of 20 KB",
            b"GET /v1.3/embed/tasks?page=" + b"1" * 20000 + b" HTTP/1.1\r\n" + base + b"\r\n",
            {400, 414},
        ),
        (
            "one header of 20 KB",
            b"GET /v1.3/embed/tasks HTTP/1.1\r\n" + base + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
            {400, 431},
        ),
        (
            "2,000 headers",
            b"GET /v1.3/embed/tasks HTTP/1.1\r\n"
            + base
            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(2000))
            + b"\r\n",
            {400, 431},
        ),
        # The body is never sent: the declared length alone is refused, at once.
        (
            "a 3 GB upload declared",
            b"POST /v1.3/embed/tasks HTTP/1.1\r\n"
            + base
            + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3221225472\r\n\r\n",
            {413},
        ),
        (
            "a 3 GB sync embed declared",
            b"POST /v1.3/embed HTTP/1.1\r\n"
            + base
            + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3221225472\r\n\r\n",
            {413},
        ),
        (
            "a 5 MB urlencoded form",
            b"POST /v1.3/embed HTTP/1.1\r\n"
            + base
            + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000000\r\n\r\n"
            + b"text="
            + b"a" * (5000000 - 5),
            {413},
        ),
    ]
    field = (
        b'--b\r\nContent-Disposition: form-data; name="model_name"\r\n\r\n'
        + b"m" * 100_000
        + b"\r\n--b--\r\n"
    )
    cases.append(
        (
            "a 100 KB text field",
            b"POST /v1.3/embed/tasks HTTP/1.1\r\n"
            + base
            + b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: "
            + str(len(field)).encode()
            + b"\r\n\r\n"
            + field,
            {400},
        )
    )
    chunk = b"\0" * 65536
    upload = (
        b'--b\r\nContent-Disposition: form-data; name="model_name"\r\n\r\n'
        + MODEL.encode()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="video_file"; filename="x.mp4"\r\n\r\n'
    )
    chunked = (
        b"%x\r\n%s\r\n" % (len(upload), upload)
        + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(40))
        + b"0\r\n\r\n"
    )
    cases.append(
        (
            "a 2.6 MB chunked upload over the 1 MB cap",
            b"POST /v1.3/embed/tasks HTTP/1.1\r\n"
            + base
            + b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked,
            {413},
        )
    )
    for what, request, expected in cases:
        status, body, headers = await raw(srv, request)
        assert status in expected, (what, status, body)
        assert_contract_error(status, body, Hdrs(headers))
        if status == 413:
            assert body["code"] == "video_filesize_too_large", (what, body)
    assert list((srv.data_dir / "uploads").iterdir()) == []


async def test_slow_clients_do_not_starve_others(srv: Any, http: aiohttp.ClientSession) -> None:
    """200 connections that stop mid-headers and 50 that trickle a body: everyone else is
    still answered at once."""
    host, port = srv.base_url.split("//")[1].split("/")[0].split(":")
    writers = []
    try:
        for i in range(250):
            _, w = await asyncio.open_connection(host, int(port))
            if i < 200:
                w.write(b"POST /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nx-api-k")
            else:
                w.write(
                    b"POST /v1.3/embed/tasks HTTP/1.1\r\nHost: x\r\nx-api-key: "
                    + srv.api_key.encode()
                    + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: 10000000\r\n\r\n--b\r\nContent-Disposition: form-data; "
                    b'name="model_name"\r\n\r\n' + MODEL.encode()
                )
            writers.append(w)
        await asyncio.gather(*(w.drain() for w in writers))
        loop = asyncio.get_running_loop()
        for _ in range(20):
            started = loop.time()
            status, _, _ = await call(http, "GET", srv.url("embed/tasks"), headers=srv.headers)
            assert status == 200
            assert loop.time() - started < 1.0
    finally:
        for w in writers:
            w.close()
    assert os.path.isdir(srv.data_dir / "uploads")
