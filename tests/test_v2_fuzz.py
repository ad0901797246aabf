"""Fuzz twin of the v2 agreement tests: Hypothesis builds v2 request bodies (valid, nearly
valid and wrong at every depth) and the shared validator's verdict must be the server's:
accepted locally -> 200; refused locally -> the same status, code, message and
``details.parameter``. The server never answers 5xx. Real ``python -m aioembed.server``
over loopback; the bounded default run tries a few hundred bodies, ``slow`` thousands.
"""

from __future__ import annotations

import http.client
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from _faults import report
from conftest import API_KEY, ServerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioembed import APIStatusError
from aioembed.contract.v2 import (
    AudioInput,
    Dynamic,
    Fixed,
    MediaSource,
    VideoInput,
    check_embed_body,
    check_task_body,
    task_body,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

SIZES = [1, pytest.param(10, marks=pytest.mark.slow)]
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
URL = "http://127.0.0.1:1/x.mp4"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz-v2")
    (root / "logs").mkdir()
    srv = ServerProcess(
        root / "data",
        args=["--workers", "1", "--no-probe-on-create", "--allow-url-host", "127.0.0.1"],
        api_key=API_KEY,
        log_dir=root / "logs",
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.kill_group()


def post(srv: ServerProcess, path: str, body: Any) -> tuple[int, Any]:
    host, port = srv.base_url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(
            "POST",
            f"/v1.3/{path}",
            body=json.dumps(body).encode(),
            headers={"x-api-key": srv.api_key, "Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.sampled_from([6.0, 6.5, 2.0, 1e-9, -0.0]),
    st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2),
    st.just({}),
)
ints = st.one_of(
    st.integers(2, 5),
    st.integers(2, 5),
    st.integers(0, 12),
    st.sampled_from([2.0, 4.0, 6.5, "6", True, None]),
    anything,
)
sources = st.one_of(
    st.just({"url": URL}),
    st.just({"url": URL}),
    st.just({"base64_string": "AAAA"}),
    st.just({"url": URL}),
    st.just({"asset_id": "a" * 24}),
    st.just({"url": URL, "asset_id": None}),
    st.just({"url": URL, "base64_string": "AAAA"}),
    st.just({"url": "ftp://x"}),
    st.just({"base64_string": "data:x;base64,AA"}),
    st.just({"uri": URL}),
    anything,
)
inner_seg = st.one_of(
    st.builds(lambda d: {"strategy": "fixed", "fixed": {"duration_sec": d}}, ints),
    st.builds(lambda m: {"strategy": "dynamic", "dynamic": {"min_duration_sec": m}}, ints),
    st.just({"strategy": "fixed"}),
    st.just({"strategy": "other", "fixed": {"duration_sec": 6}}),
    st.just({"fixed": {"duration_sec": 6}}),
    st.just(
        {"strategy": "fixed", "fixed": {"duration_sec": 6}, "dynamic": {"min_duration_sec": 2}}
    ),
)
segmentation = st.one_of(st.none(), inner_seg, inner_seg.map(lambda s: {"temporal": s}), anything)
choice_lists = st.one_of(
    st.none(),
    st.none(),
    st.lists(
        st.sampled_from(
            [
                "visual",
                "audio",
                "transcription",
                "text",
                "clip",
                "asset",
                "local",
                "separate_embedding",
                "fused_embedding",
                "Visual",
            ]
        ),
        max_size=3,
    ),
    anything,
)
timed = st.one_of(
    st.none(),
    st.just([{"start": 1, "end": 2, "text": "x"}]),
    st.just([{"start": 3, "end": 2, "text": "x"}]),
    st.just([{"start": 1, "end": 2}]),
    st.just([]),
    anything,
)


numbers = st.one_of(st.none(), st.floats(0, 20), st.integers(0, 20), anything)


@st.composite
def media_object(draw: Any, with_timed: bool, temporal: bool = True) -> Any:
    obj: dict[str, Any] = {"media_source": draw(sources)}
    keys = [
        ("embedding_option", choice_lists),
        ("embedding_scope", choice_lists),
        ("embedding_type", choice_lists),
    ]
    if temporal:
        keys += [("start_sec", numbers), ("end_sec", numbers), ("segmentation", segmentation)]
    for key, strat in keys:
        if draw(st.booleans()):
            obj[key] = draw(strat)
    if with_timed and temporal and draw(st.booleans()):
        obj["time_based_metadata"] = draw(timed)
    if draw(st.integers(0, 19)) == 0:
        obj[draw(st.sampled_from(["foo", "media", "segment"]))] = 1
    if draw(st.integers(0, 19)) == 0:
        del obj["media_source"]
    return obj


@st.composite
def task_bodies(draw: Any) -> Any:
    kind = draw(
        st.sampled_from(["video"] * 4 + ["audio"] * 3 + ["image", "document", "text", None])
    )
    body: dict[str, Any] = {
        "input_type": kind,
        "model_name": draw(st.sampled_from(["marengo3.0", "marengo3.5"] * 4 + ["x", None])),
    }
    target = draw(st.sampled_from(["video", "audio", "image"])) if kind is None else kind
    body[target] = draw(media_object(with_timed=True, temporal=target in ("video", "audio")))
    for key, strat in (("embedding_dimension", ints), ("embedding_uncertainty", anything)):
        if draw(st.integers(0, 5)) == 0:
            body[key] = draw(strat)
    return body


@st.composite
def embed_bodies(draw: Any) -> Any:
    kind = draw(st.sampled_from(["text", "image", "text_image", "audio", "video", "multi_input"]))
    body: dict[str, Any] = {
        "input_type": kind,
        "model_name": draw(st.sampled_from(["marengo3.0", "marengo3.5"])),
    }
    if kind == "text":
        body["text"] = {"input_text": draw(st.one_of(st.text(max_size=8), anything))}
    elif kind in ("image", "text_image"):
        body[kind] = {"media_source": draw(sources)}
        if kind == "text_image" and draw(st.booleans()):
            body[kind]["input_text"] = draw(st.text(max_size=8))
    elif kind == "multi_input":
        srcs = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"media_type": st.sampled_from(["image", "video", "audio", "document", "x"])},
                    optional={"name": st.sampled_from(["a", "b", "a"]), "url": st.just(URL)},
                ),
                max_size=3,
            )
        )
        body[kind] = {"media_sources": srcs}
        if draw(st.booleans()):
            body[kind]["input_text"] = draw(st.sampled_from(["hi <@a>", "hi", "<@zz>", ""]))
    else:
        body[kind] = draw(media_object(with_timed=False))
    if draw(st.integers(0, 3)) == 0:
        body["auto_truncate"] = draw(anything)
    return body


@st.composite
def valid_task_bodies(draw: Any) -> Any:
    """Bodies the SDK renders from typed inputs with values inside the rules."""
    model = draw(st.sampled_from(["marengo3.0", "marengo3.5"]))
    kind = draw(st.sampled_from(["video", "audio"]))
    seg = draw(
        st.one_of(
            st.none(),
            st.integers(2, 10).map(Fixed),
            st.integers(2, 5).map(Dynamic)
            if (model, kind) != ("marengo3.0", "audio")
            else st.none(),
        )
    )
    options = {
        ("marengo3.0", "video"): ["visual", "audio", "transcription"],
        ("marengo3.5", "video"): ["visual", "audio"],
        ("marengo3.0", "audio"): ["audio", "transcription"],
        ("marengo3.5", "audio"): ["audio"],
    }[(model, kind)]
    cls = VideoInput if kind == "video" else AudioInput
    item = cls(
        MediaSource.url(URL),
        start_sec=draw(st.one_of(st.none(), st.floats(0, 5))),
        segmentation=seg,
        embedding_option=draw(st.one_of(st.none(), st.lists(st.sampled_from(options), min_size=1))),
        embedding_scope=draw(
            st.one_of(st.none(), st.lists(st.sampled_from(["clip", "local", "asset"]), min_size=1))
        ),
    )
    dim = draw(st.one_of(st.none(), st.integers(1, 512))) if model == "marengo3.5" else None
    return task_body(model, item, embedding_dimension=dim)


def _verdict(check: Any, body: Any) -> tuple[int, str | None, str | None, str | None]:
    try:
        check(json.loads(json.dumps(body)))
    except APIStatusError as e:
        return e.status, str(e.code), e.message, e.parameter
    return 200, None, None, None


@pytest.mark.parametrize("scale", SIZES)
def test_fuzz_v2_local_checks_agree_with_the_server(server: ServerProcess, scale: int) -> None:
    outcomes: Counter[str] = Counter()

    @settings(FUZZ, max_examples=150 * scale)
    @given(
        body=st.one_of(
            task_bodies().map(lambda b: ("embed-v2/tasks", b)),
            valid_task_bodies().map(lambda b: ("embed-v2/tasks", b)),
            embed_bodies().map(lambda b: ("embed-v2", b)),
        )
    )
    def run(body: tuple[str, Any]) -> None:
        path, payload = body
        check = check_task_body if path.endswith("tasks") else check_embed_body
        status, code, message, parameter = _verdict(check, payload)
        got, answer = post(server, path, payload)
        assert got < 500, (payload, answer)
        if status == 200:
            outcomes["accepted"] += 1
            if got != 200:
                # Only what the validator cannot know: assets, the engine's refusals and
                # its work on the media (the sync route embeds a URL that is not there).
                err = answer["error"]
                assert err["code"] == "parameter_invalid", (payload, answer)
                outcomes["server-only"] += 1
            return
        outcomes[f"local-{code}"] += 1
        err = answer["error"]
        assert (got, err["code"], err["message"], err.get("details", {}).get("parameter")) == (
            status,
            code,
            message,
            parameter,
        ), payload

    run()
    assert outcomes["accepted"] and sum(v for k, v in outcomes.items() if k.startswith("local")), (
        outcomes
    )
    report(
        f"fuzz-v2-x{scale}",
        cases=sum(v for k, v in outcomes.items() if k != "server-only"),
        **dict(outcomes),
    )
