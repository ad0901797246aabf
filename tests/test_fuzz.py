"""Property-based fuzzing (Hypothesis) of every endpoint, of multipart framing, and of the
SDK's local validation against the server's.

The properties: the server never answers 5xx and never hangs (every request has a
deadline, and the server's own counters must show no 5xx either); every answer is
JSON; every error has the contract's shape ``{"code", "message"}`` (+ ``request_id``).
Requests go over real sockets to a real ``python -m aioembed.server`` on loopback;
the bounded default run tries a few hundred cases per property, the ``slow`` one
thousands. The case counts are reported.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _faults import assert_contract_error, report
from conftest import API_KEY, ServerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODEL = "Marengo-retrieval-2.7"
OTHER_KEY = "other-key"
ADMIN_KEY = "admin-key"
TIMEOUT = 20.0  # per request: past this the server counts as hung

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")


# -- the server under fuzz ------------------------------------------------------------------


class Target:
    """One server for the module, with what the fuzzers saw."""

    def __init__(self, srv: ServerProcess, video: bytes, png: bytes, wav: bytes) -> None:
        self.srv = srv
        host, port = srv.base_url.split("//")[1].split("/")[0].split(":")
        self.host, self.port = host, int(port)
        self.video, self.png, self.wav = video, png, wav
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.task_ids: list[str] = []

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, raw, resp.headers
        finally:
            conn.close()

    def check(self, kind: str, status: int, raw: bytes, headers: Any) -> Any:
        """The properties every answer must have; returns the parsed body."""
        self.cases[kind] += 1
        self.statuses[status] += 1
        assert status < 500, (status, raw[:500])
        assert headers.get("Content-Type", "").startswith("application/json"), (status, raw[:200])
        body = json.loads(raw)
        if status >= 400:
            assert_contract_error(status, body, headers)
        else:
            assert status == 200 and isinstance(body, dict), (status, body)
        return body


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from aioembed.samples import make_audio, make_image, make_video

    root = tmp_path_factory.mktemp("fuzz")
    make_video(root / "v.mp4", duration=4, fps=5, seed=91)
    make_image(root / "i.png", seed=92)
    make_audio(root / "a.wav", duration=2, seed=93)
    logs = root / "logs"
    logs.mkdir()
    srv = ServerProcess(
        root / "data",
        args=[
            "--workers",
            "1",
            "--max-upload-bytes",
            "1M",
            "--api-key",
            OTHER_KEY,
            "--admin-key",
            ADMIN_KEY,
        ],
        api_key=API_KEY,
        log_dir=logs,
    )
    srv.start()
    t = Target(
        srv,
        (root / "v.mp4").read_bytes(),
        (root / "i.png").read_bytes(),
        (root / "a.wav").read_bytes(),
    )
    try:
        yield t
        # The server's own count agrees: not one 5xx, whatever the client saw.
        served = srv.counts(key=ADMIN_KEY)  # every key's requests, and the keyless ones
        fives = {k: n for k, n in served.items() if k[2] >= 500}
        assert fives == {}, fives
        log = "".join(p.read_text(errors="replace") for p in logs.iterdir())
        assert "Traceback" not in log and "internal error" not in log, log[-4000:]
        report(
            "fuzz",
            cases=dict(t.cases),
            total_cases=sum(t.cases.values()),
            statuses={str(k): v for k, v in sorted(t.statuses.items())},
            server_5xx=sum(fives.values()),
        )
    finally:
        srv.kill_group()


FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: (default run, slow run) examples per property.
SIZES = [pytest.param(2, id="bounded"), pytest.param(20, id="thorough", marks=pytest.mark.slow)]


# -- strategies ---------------------------------------------------------------------------------

CREATE_FIELDS = [
    "model_name",
    "video_url",
    "video_start_offset_sec",
    "video_end_offset_sec",
    "video_clip_length",
    "video_embedding_scope",
]
EMBED_FIELDS = ["model_name", "text", "image_url", "audio_url", "audio_start_offset_sec"]

numbers = st.one_of(
    st.sampled_from(
        [
            "6",
            "6.0",
            "2",
            "10",
            "12.5",
            "0",
            "-0",
            "-1",
            "1e308",
            "-1e308",
            "1e-320",
            "nan",
            "inf",
            "-inf",
            "NaN",
            "Infinity",
            "0x10",
            " 5 ",
            "5\n",
            "٥",
            "1_000",
            "4.",
            ".5",
            "1e",
            "--1",
            "",
            "true",
            "null",
            "[1]",
            "9" * 400,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
urls = st.sampled_from(
    [
        "http://127.0.0.1:1/x.mp4",
        "http://localhost:1/x.mp4",
        "http://[::1]:1/x.mp4",
        "http://127.1/x.mp4",
        "http://2130706433/x.mp4",
        "https://127.0.0.1:1/x.mp4",
        "ftp://127.0.0.1/x.mp4",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "http://[::1",
        "http://user:pass@127.0.0.1:1/x",
        "//127.0.0.1/x.mp4",
        "http://127.0.0.1:99999/x.mp4",
        "http://127.0.0.1:1/" + "a" * 3000,
    ]
)
texts = st.text(max_size=60)
values = st.one_of(
    numbers,
    urls,
    texts,
    st.sampled_from([MODEL, "marengo3.0", "Marengo-retrieval-2.6", "clip", "video", "both", ""]),
)
names = st.one_of(
    st.sampled_from(CREATE_FIELDS + EMBED_FIELDS + ["video_file", "image_file", "audio_file"]),
    st.sampled_from(["bogus", "MODEL_NAME", "model_name ", "model_name[]", "", "x" * 300]),
    st.text(min_size=1, max_size=20),
)
filenames = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "v.mp4",
            "../../x.mp4",
            "..",
            "/etc/passwd",
            "a\\b\\..\\c.mp4",
            "%2e%2e%2fx",
            "x" * 600,
            "ü.mp4",
            "a\u202ex.mp4",
            "nul\x00.mp4",
            'quote".mp4',
        ]
    ),
    st.text(max_size=40),
)


def file_bodies(target: Target) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(target.video),
        st.just(target.png),
        st.just(target.wav),
        st.just(b""),
        st.binary(max_size=2048),
        st.just(target.video[: len(target.video) // 2]),
    )


def part(
    name: str | None, value: bytes, filename: str | None = None, ctype: str | None = None
) -> bytes:
    disp = "form-data" if name is None else f'form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    head = f"Content-Disposition: {disp}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + value


def multipart(parts: list[bytes], boundary: str = "fuzzBoundary7MA4YWxk") -> tuple[bytes, str]:
    b = boundary.encode()
    body = b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + b + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


@st.composite
def forms(draw: Any, target: Target, fields: list[str], files: list[str]) -> tuple[bytes, str]:
    """A request body in one of the encodings a client might send (or get wrong)."""
    pairs = draw(st.lists(st.tuples(st.one_of(st.sampled_from(fields), names), values), max_size=8))
    if draw(st.booleans()):
        pairs.insert(0, ("model_name", MODEL))
    file_parts = draw(
        st.lists(st.tuples(st.sampled_from(files), file_bodies(target), filenames), max_size=2)
    )
    encoding = draw(
        st.sampled_from(["multipart"] * 6 + ["urlencoded", "json", "text", "none", "no-boundary"])
    )
    if encoding == "multipart":
        parts = [part(n, v.encode("utf-8", "surrogatepass")) for n, v in pairs]
        parts += [part(n, data, fname, "video/mp4") for n, data, fname in file_parts]
        return multipart(parts)
    if encoding == "urlencoded":
        return urllib.parse.urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    if encoding == "json":
        return json.dumps(dict(pairs)).encode(), "application/json"
    if encoding == "text":
        return b"model_name=" + MODEL.encode(), "text/plain"
    if encoding == "none":
        return b"", ""
    body, _ = multipart([part(n, v.encode("utf-8", "surrogatepass")) for n, v in pairs])
    return body, "multipart/form-data"


def auth(draw: Any) -> dict[str, str]:
    key = draw(st.sampled_from([API_KEY, API_KEY, API_KEY, OTHER_KEY, "", "nope", API_KEY + " "]))
    return {"x-api-key": key} if key else {}


headers_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


# -- the endpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_create_task(target: Target, scale: int) -> None:
    @settings(FUZZ, max_examples=120 * scale)
    @given(data=st.data())
    def run(data: Any) -> None:
        body, ctype = data.draw(forms(target, CREATE_FIELDS, ["video_file"]))
        headers = auth(data.draw)
        if ctype:
            headers["Content-Type"] = ctype
        if data.draw(st.booleans()):
            headers["Idempotency-Key"] = data.draw(headers_text)
        status, raw, hdrs = target.request("POST", "/v1.3/embed/tasks", body, headers)
        parsed = target.check("create", status, raw, hdrs)
        if status == 200:
            assert isinstance(parsed["_id"], str) and len(parsed["_id"]) == 24
            target.task_ids.append(parsed["_id"])

    run()


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_sync_embed(target: Target, scale: int) -> None:
    @settings(FUZZ, max_examples=80 * scale)
    @given(data=st.data())
    def run(data: Any) -> None:
        body, ctype = data.draw(forms(target, EMBED_FIELDS, ["image_file", "audio_file"]))
        headers = auth(data.draw)
        if ctype:
            headers["Content-Type"] = ctype
        status, raw, hdrs = target.request("POST", "/v1.3/embed", body, headers)
        parsed = target.check("embed", status, raw, hdrs)
        if status == 200:
            assert parsed["model_name"] in (MODEL, "marengo3.0")

    run()


query_values = st.one_of(
    values,
    st.sampled_from(
        [
            "processing",
            "ready",
            "failed",
            "ready,failed",
            "2026-11-25T10:00:00Z",
            "2026-13-45T99:99:99Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "-1",
            "1000000001",
            "50",
            "51",
            "visual-text",
            "audio",
            "visual",
        ]
    ),
)
query_names = st.one_of(
    st.sampled_from(["page", "page_limit", "started_at", "ended_at", "status", "embedding_option"]),
    names,
)


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_list_status_retrieve_queries(target: Target, scale: int) -> None:
    @settings(FUZZ, max_examples=150 * scale)
    @given(data=st.data())
    def run(data: Any) -> None:
        ids = [*[i for i in target.task_ids if len(i) == 24][:5], "0" * 24, "f" * 24]
        task_id = data.draw(
            st.one_of(
                st.sampled_from(ids),
                st.sampled_from(
                    [
                        "..",
                        "../..",
                        "%2e%2e",
                        "..%2f..%2fetc%2fpasswd",
                        "%00",
                        "a" * 5000,
                        "F" * 24,
                        "%20",
                        "%",
                    ]
                ),
                st.text(max_size=30).map(lambda s: urllib.parse.quote(s, safe="")),
            )
        )
        path = data.draw(
            st.sampled_from(
                [
                    "/v1.3/embed/tasks",
                    f"/v1.3/embed/tasks/{task_id}",
                    f"/v1.3/embed/tasks/{task_id}/status",
                ]
            )
        )
        query = data.draw(st.lists(st.tuples(query_names, query_values), max_size=6))
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        method = data.draw(st.sampled_from(["GET"] * 8 + ["POST", "DELETE", "PUT", "HEAD"]))
        status, raw, hdrs = target.request(method, url, None, auth(data.draw))
        if method == "HEAD":
            target.cases["query"] += 1
            target.statuses[status] += 1
            assert status < 500 and raw == b""
            return
        target.check("query", status, raw, hdrs)

    run()


# -- multipart framing, raw bytes over a socket ---------------------------------------------------


def raw_exchange(target: Target, request: bytes, half_close: bool) -> bytes:
    """Send bytes, optionally half-close, read the answer until the server closes or a
    complete response arrives; a server that neither answers nor closes is hung."""
    with socket.create_connection((target.host, target.port), timeout=TIMEOUT) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused early: the answer is already waiting
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"no answer and no close in {TIMEOUT} s") from None
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
        return b"".join(chunks)


def parse_raw(raw: bytes) -> tuple[int, Any, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, body, headers


class _Headers(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:  # case-insensitive like http.client's
        return super().get(key.lower(), default)


@st.composite
def framed(draw: Any, target: Target) -> tuple[bytes, bool]:
    """A POST whose multipart framing is valid, subtly wrong or plain junk."""
    boundary = draw(st.sampled_from(["b", "fuzzBoundary7MA4YWxk", "a" * 70, "x y", "--", "é"]))
    declared = draw(st.sampled_from([boundary, boundary, "other", ""]))
    b = boundary.encode("utf-8")
    pieces = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(["model_name", "video_file", "video_clip_length", "bogus"]))
        header = draw(
            st.one_of(
                st.just(f'Content-Disposition: form-data; name="{name}"'.encode()),
                st.just(
                    f'Content-Disposition: form-data; name="{name}"; filename="f.mp4"'.encode()
                ),
                st.just(b"Content-Disposition: attachment"),
                st.just(b"Content-Disposition: form-data; name=" + b'"' * 3),
                st.just(b"Content-Type: multipart/mixed; boundary=inner"),
                st.just(b"X-Junk: " + b"j" * 9000),
                st.binary(max_size=80),
            )
        )
        value = draw(st.one_of(st.just(MODEL.encode()), st.binary(max_size=512), st.just(b"6")))
        sep = draw(st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\n\n", b"\r\n", b""]))
        pieces.append(b"--" + b + b"\r\n" + header + sep + value + b"\r\n")
    ending = draw(
        st.sampled_from([b"--" + b + b"--\r\n", b"--" + b + b"--", b"", b"--" + b, b"junk"])
    )
    body = draw(st.one_of(st.just(b"".join(pieces) + ending), st.binary(max_size=2048)))
    length_kind = draw(st.sampled_from(["exact"] * 4 + ["short", "long", "chunked", "bad"]))
    key = API_KEY if draw(st.integers(0, 9)) else "nope"
    ctype = f"multipart/form-data; boundary={declared}" if declared else "multipart/form-data"
    path = draw(st.sampled_from(["/v1.3/embed/tasks", "/v1.3/embed"]))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nContent-Type: ".encode()
    head += ctype.encode("utf-8") + b"\r\n"
    half_close = False
    if length_kind == "exact":
        head += f"Content-Length: {len(body)}\r\n".encode()
    elif length_kind == "short":
        head += f"Content-Length: {max(0, len(body) - 7)}\r\n".encode()
    elif length_kind == "long":  # promises more than it sends, then stops sending
        head += f"Content-Length: {len(body) + 1000}\r\n".encode()
        half_close = True
    elif length_kind == "bad":
        head += draw(
            st.sampled_from(
                [
                    b"Content-Length: -5\r\n",
                    b"Content-Length: x\r\n",
                    b"Content-Length: 1\r\nContent-Length: 2\r\n",
                    b"Content-Length: 99999999999999999999999\r\n",
                ]
            )
        )
    else:
        head += b"Transfer-Encoding: chunked\r\n"
        body = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    return head + b"Connection: close\r\n\r\n" + body, half_close


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_multipart_framing(target: Target, scale: int) -> None:
    @settings(FUZZ, max_examples=150 * scale)
    @given(data=st.data())
    def run(data: Any) -> None:
        request, half_close = data.draw(framed(target))
        raw = raw_exchange(target, request, half_close)
        target.cases["framing"] += 1
        if not raw:
            # Closed without a word: allowed only when the request was unfinished.
            assert half_close, request[:300]
            return
        status, body, headers = parse_raw(raw)
        target.statuses[status] += 1
        assert status < 500, raw[:500]
        assert headers.get("content-type", "").startswith("application/json"), raw[:300]
        parsed = json.loads(body)
        if status >= 400:
            assert_contract_error(status, parsed, _Headers(headers))
        else:
            target.task_ids.append(parsed.get("_id", ""))

    run()


@st.composite
def junk_requests(draw: Any) -> bytes:
    """Whole requests that are not quite HTTP: odd request lines, headers and versions."""
    method = draw(st.sampled_from([b"GET", b"POST", b"get", b"G\x00T", b"", b"X" * 300]))
    target_path = draw(
        st.sampled_from(
            [
                b"/v1.3/embed/tasks",
                b"/v1.3/embed/tasks?page=%",
                b"*",
                b"http://x/",
                b"/v1.3/../../etc/passwd",
                b"/" + b"a" * 9000,
                b"/\x00",
                b"",
            ]
        )
    )
    version = draw(
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"HTTP/1.1x"])
    )
    headers = draw(
        st.lists(
            st.one_of(
                st.just(b"x-api-key: " + API_KEY.encode()),
                st.just(b"Host: x"),
                st.just(b"X-Big: " + b"a" * 20000),
                st.just(b"Bad Header: y"),
                st.just(b": novalue"),
                st.just(b"Content-Length: 3"),
                st.binary(max_size=40).filter(lambda b: b"\r\n" not in b),
            ),
            max_size=6,
        )
    )
    body = draw(st.binary(max_size=64))
    return (
        method
        + b" "
        + target_path
        + b" "
        + version
        + b"\r\n"
        + b"\r\n".join(headers)
        + b"\r\n\r\n"
        + body
    )


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_malformed_http(target: Target, scale: int) -> None:
    @settings(FUZZ, max_examples=100 * scale)
    @given(request=junk_requests())
    def run(request: bytes) -> None:
        raw = raw_exchange(target, request, half_close=True)
        target.cases["http"] += 1
        if not raw:
            return  # closed on garbage: no answer, and no hang either
        status, body, headers = parse_raw(raw)
        target.statuses[status] += 1
        assert status < 500, raw[:500]
        assert headers.get("content-type", "").startswith("application/json"), raw[:300]
        parsed = json.loads(body)
        if status >= 400:
            assert_contract_error(status, parsed, _Headers(headers))

    run()


# -- the SDK's local checks against the server's --------------------------------------------------


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that checks videos in the task, so a create's answer depends on the form only."""
    root = tmp_path_factory.mktemp("fuzz-sdk")
    (root / "logs").mkdir()
    srv = ServerProcess(
        root / "data",
        args=["--workers", "1", "--no-probe-on-create"],
        api_key=API_KEY,
        log_dir=root / "logs",
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.kill_group()


sdk_numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 2.0, 10.0, 1.999999, 10.000001, 4.0, 6.0, -0.0, 1e-9]),
    st.integers(min_value=-5, max_value=30).map(float),
)


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_sdk_agrees_with_server(
    lenient: ServerProcess, video_factory: Any, scale: int
) -> None:
    """Whatever create() accepts locally the server accepts (no upload wasted on a 400),
    and whatever it refuses the server refuses with the same code."""
    from aioembed import AsyncClient, ParameterError

    video: Path = video_factory(duration=4, fps=5, seed=94)
    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=60 * scale)
    @given(
        start=sdk_numbers,
        end=sdk_numbers,
        clip=sdk_numbers,
        scopes=st.one_of(
            st.none(),
            st.lists(st.sampled_from(["clip", "video", "Clip", "both", "clip "]), max_size=3),
        ),
        model=st.sampled_from([MODEL, "marengo3.0"]),
    )
    def run(
        start: float | None,
        end: float | None,
        clip: float | None,
        scopes: list[str] | None,
        model: str,
    ) -> None:
        async def attempt() -> tuple[str, str | None]:
            async with AsyncClient(lenient.api_key, base_url=lenient.base_url) as c:
                try:
                    await c.embed.tasks.create(
                        model,
                        video_file=video,
                        video_start_offset_sec=start,
                        video_end_offset_sec=end,
                        video_clip_length=clip,
                        video_embedding_scope=scopes,
                    )
                except ParameterError as e:
                    return "local", e.code
                return "accepted", None

        local, code = asyncio.run(attempt())
        outcomes[local] += 1
        # The same form sent raw (no SDK checks): the server's own verdict.
        fields = [("model_name", model)]
        for name, value in (
            ("video_start_offset_sec", start),
            ("video_end_offset_sec", end),
            ("video_clip_length", clip),
        ):
            if value is not None:
                fields.append((name, repr(value)))
        fields += [("video_embedding_scope", s) for s in scopes or []]
        parts = [part(n, v.encode()) for n, v in fields]
        parts.append(part("video_file", video.read_bytes(), "v.mp4", "video/mp4"))
        body, ctype = multipart(parts)
        conn = http.client.HTTPConnection(*lenient.base_url.split("//")[1].split("/")[0].split(":"))
        try:
            conn.request(
                "POST",
                "/v1.3/embed/tasks",
                body=body,
                headers={"x-api-key": lenient.api_key, "Content-Type": ctype},
            )
            resp = conn.getresponse()
            answer = json.loads(resp.read())
        finally:
            conn.close()
        if local == "accepted":
            assert resp.status == 200, (start, end, clip, scopes, answer)
        elif scopes == [] and resp.status == 200:
            pass  # an empty scope list: the SDK sends the default, the raw form sends none
        else:
            assert resp.status == 400 and answer["code"] == code, (start, end, clip, scopes, answer)

    run()
    assert outcomes["local"] and outcomes["accepted"], outcomes
    report(f"fuzz-sdk-x{scale}", cases=sum(outcomes.values()), **dict(outcomes))
