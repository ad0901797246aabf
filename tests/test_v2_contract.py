"""The Embed API v2 contract without a server: rendering per model, the shared validator's
codes, messages and JSON paths, defaults per model, and the response models' round trip.

Client and server agreement over real sockets is in ``test_v2_server.py``; these tests pin
the rules themselves (the contract's tables, one case per rule).
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import numpy as np
import pytest

from aioembed import ParameterError, PayloadTooLargeError
from aioembed._wire import dumps, loads_vectors
from aioembed.contract.v2 import (
    AudioInput,
    Dynamic,
    EmbedV2Response,
    Fixed,
    ImageInput,
    MediaSource,
    MultiInput,
    MultiSource,
    TaskSummary,
    TextInput,
    TimeBasedMetadata,
    V2Limits,
    V2Task,
    VideoInput,
    check_embed_body,
    check_task_body,
    converter,
    embed_body,
    task_body,
)

URL = "https://example.com/match.mp4"


def video_30(**video: Any) -> dict[str, Any]:
    return {
        "input_type": "video",
        "model_name": "marengo3.0",
        "video": {"media_source": {"url": URL}, **video},
    }


def video_35(**video: Any) -> dict[str, Any]:
    return {**video_30(**video), "model_name": "marengo3.5"}


def test_rendering_per_model() -> None:
    item = VideoInput(MediaSource.url(URL), segmentation=Fixed(6), start_sec=0, end_sec=12.0)
    b30 = task_body("marengo3.0", item)
    assert b30["video"]["segmentation"] == {"strategy": "fixed", "fixed": {"duration_sec": 6}}
    b35 = task_body("marengo3.5", item, embedding_dimension=256)
    assert b35["video"]["segmentation"] == {
        "temporal": {"strategy": "fixed", "fixed": {"duration_sec": 6}}
    }
    assert b35["embedding_dimension"] == 256
    audio = task_body("marengo3.5", AudioInput(MediaSource.base64(b"abc"), segmentation=Dynamic(3)))
    assert audio["audio"]["media_source"] == {"base64_string": base64.b64encode(b"abc").decode()}
    assert audio["audio"]["segmentation"]["temporal"]["dynamic"] == {"min_duration_sec": 3}
    assert embed_body("marengo3.0", TextInput("a goal")) == {
        "input_type": "text",
        "model_name": "marengo3.0",
        "text": {"input_text": "a goal"},
    }


def test_defaults_per_model() -> None:
    v30 = check_task_body(video_30()).media
    assert (v30.segmentation.strategy, v30.segmentation.seconds) == ("dynamic", 4)  # type: ignore[union-attr]
    assert v30.options == ("visual", "audio", "transcription")
    assert v30.scopes == ("clip", "asset") and v30.types == ("separate_embedding",)
    v35 = check_task_body(video_35())
    assert v35.media.segmentation is not None and v35.media.segmentation.seconds == 2
    assert v35.media.options == ("visual", "audio") and v35.embedding_dimension == 512
    a30 = check_task_body(
        {"input_type": "audio", "model_name": "marengo3.0", "audio": {"media_source": {"url": URL}}}
    ).media
    assert a30.segmentation is not None and (
        a30.segmentation.strategy,
        a30.segmentation.seconds,
    ) == ("fixed", 6)
    assert a30.options == ("audio", "transcription")
    a35 = check_task_body(
        {"input_type": "audio", "model_name": "marengo3.5", "audio": {"media_source": {"url": URL}}}
    ).media
    assert a35.options == ("audio",)
    image = check_task_body(
        {"input_type": "image", "model_name": "marengo3.5", "image": {"media_source": {"url": URL}}}
    ).media
    assert (image.options, image.scopes, image.types) == (
        ("visual",),
        ("asset",),
        ("separate_embedding",),
    )


def test_null_means_absent_and_integers() -> None:
    body = video_30(
        segmentation={"strategy": "fixed", "fixed": {"duration_sec": 6.0}},
        start_sec=None,
        embedding_option=None,
    )
    body["video"]["media_source"]["asset_id"] = None
    body["embedding_dimension"] = None
    spec = check_task_body(body)
    assert spec.media.segmentation is not None and spec.media.segmentation.seconds == 6
    assert spec.media.start == 0.0


# (body, expected code, expected details.parameter, a word the message must hold)
CASES: list[tuple[dict[str, Any], str, str]] = [
    ({"model_name": "marengo3.0", "video": {}}, "parameter_not_provided", "input_type"),
    ({"input_type": "video", "video": {}}, "parameter_not_provided", "model_name"),
    ({"input_type": "video", "model_name": "marengo3.0"}, "parameter_not_provided", "video"),
    (
        {"input_type": "video", "model_name": "marengo3.0", "video": {}},
        "parameter_not_provided",
        "video.media_source",
    ),
    ({**video_30(), "foo": 1}, "parameter_unknown", "foo"),
    (
        video_35(
            segmentation={"temporal": {"strategy": "fixed", "fixed": {"duration_sec": 6}, "foo": 1}}
        ),
        "parameter_unknown",
        "video.segmentation.temporal.foo",
    ),
    (
        video_30(media_source={"url": URL, "path": "/x"}),
        "parameter_unknown",
        "video.media_source.path",
    ),
    # unknown wins over missing, missing over invalid
    ({"input_type": "video", "model_name": "nope", "bar": 1}, "parameter_unknown", "bar"),
    ({"input_type": "video", "model_name": "nope"}, "parameter_not_provided", "video"),
    (
        video_30(segmentation={"strategy": "fixed"}),
        "parameter_not_provided",
        "video.segmentation.fixed",
    ),
    (
        video_30(segmentation={"fixed": {"duration_sec": 6}}),
        "parameter_not_provided",
        "video.segmentation.strategy",
    ),
    (
        video_35(time_based_metadata=[{"start": 1, "end": 2}], embedding_type=["fused_embedding"]),
        "parameter_not_provided",
        "video.time_based_metadata[0].text",
    ),
    ({**video_30(), "model_name": "Marengo-retrieval-2.7"}, "parameter_invalid", "model_name"),
    ({**video_30(), "input_type": "text"}, "parameter_invalid", "input_type"),
    (
        {
            "input_type": "image",
            "model_name": "marengo3.0",
            "image": {"media_source": {"url": URL}},
        },
        "parameter_invalid",
        "input_type",
    ),
    ({**video_30(), "audio": {"media_source": {"url": URL}}}, "parameter_invalid", "audio"),
    ({**video_30(), "embedding_dimension": 256}, "parameter_invalid", "embedding_dimension"),
    ({**video_35(), "embedding_dimension": 6.5}, "parameter_invalid", "embedding_dimension"),
    ({**video_35(), "embedding_dimension": 513}, "parameter_invalid", "embedding_dimension"),
    ({**video_35(), "embedding_dimension": True}, "parameter_invalid", "embedding_dimension"),
    ({**video_30(), "embedding_uncertainty": True}, "parameter_invalid", "embedding_uncertainty"),
    ({**video_35(), "embedding_uncertainty": True}, "parameter_invalid", "embedding_uncertainty"),
    (
        video_30(media_source={"url": URL, "asset_id": "a" * 24}),
        "parameter_invalid",
        "video.media_source",
    ),
    (
        video_30(media_source={"url": "ftp://x/a.mp4"}),
        "parameter_invalid",
        "video.media_source.url",
    ),
    (
        video_30(media_source={"base64_string": "data:video/mp4;base64,AAAA"}),
        "parameter_invalid",
        "video.media_source.base64_string",
    ),
    (
        video_30(media_source={"base64_string": "AA*A"}),
        "parameter_invalid",
        "video.media_source.base64_string",
    ),
    (video_30(start_sec=-1), "parameter_invalid", "video.start_sec"),
    (video_30(start_sec=5, end_sec=5), "parameter_invalid", "video.end_sec"),
    (
        video_30(segmentation={"strategy": "fixed", "fixed": {"duration_sec": 6.5}}),
        "parameter_invalid",
        "video.segmentation.fixed.duration_sec",
    ),
    (
        video_30(segmentation={"strategy": "fixed", "fixed": {"duration_sec": 11}}),
        "parameter_invalid",
        "video.segmentation.fixed.duration_sec",
    ),
    (
        video_30(segmentation={"strategy": "dynamic", "dynamic": {"min_duration_sec": 1}}),
        "parameter_invalid",
        "video.segmentation.dynamic.min_duration_sec",
    ),
    (
        video_30(
            segmentation={
                "strategy": "fixed",
                "fixed": {"duration_sec": 6},
                "dynamic": {"min_duration_sec": 3},
            }
        ),
        "parameter_invalid",
        "video.segmentation",
    ),
    (
        video_30(segmentation={"temporal": {"strategy": "fixed", "fixed": {"duration_sec": 6}}}),
        "parameter_invalid",
        "video.segmentation",
    ),
    (
        video_35(segmentation={"strategy": "fixed", "fixed": {"duration_sec": 6}}),
        "parameter_invalid",
        "video.segmentation",
    ),
    (
        {
            "input_type": "audio",
            "model_name": "marengo3.0",
            "audio": {
                "media_source": {"url": URL},
                "segmentation": {"strategy": "dynamic", "dynamic": {"min_duration_sec": 3}},
            },
        },
        "parameter_invalid",
        "audio.segmentation.strategy",
    ),
    (video_35(embedding_option=["transcription"]), "parameter_invalid", "video.embedding_option"),
    (video_30(embedding_option=[]), "parameter_invalid", "video.embedding_option"),
    (video_30(embedding_scope=["video"]), "parameter_invalid", "video.embedding_scope"),
    (
        video_30(embedding_option=["visual"], embedding_type=["fused_embedding"]),
        "parameter_invalid",
        "video.embedding_type",
    ),
    (video_35(embedding_type=["fused_embedding"]), "parameter_invalid", "video.embedding_type"),
    (
        video_30(time_based_metadata=[{"start": 1, "end": 2, "text": "x"}]),
        "parameter_invalid",
        "video.time_based_metadata",
    ),
    (
        video_35(
            time_based_metadata=[{"start": 3, "end": 2, "text": "x"}],
            embedding_type=["fused_embedding"],
        ),
        "parameter_invalid",
        "video.time_based_metadata[0]",
    ),
    (
        video_35(time_based_metadata=[{"start": 1, "end": 2, "text": "x"}]),
        "parameter_invalid",
        "video.time_based_metadata",
    ),
    (
        {
            "input_type": "image",
            "model_name": "marengo3.5",
            "image": {"media_source": {"url": URL}, "embedding_scope": ["clip"]},
        },
        "parameter_invalid",
        "image.embedding_scope",
    ),
]


@pytest.mark.parametrize(("body", "code", "path"), CASES)
def test_task_rules(body: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(ParameterError) as info:
        check_task_body(copy.deepcopy(body))
    err = info.value
    assert (err.code, err.parameter, err.status) == (code, path, 400), err.message
    if code == "parameter_invalid":
        assert err.message.startswith(f"The {path} parameter is invalid.")


def test_uncertainty_needs_a_scope_without_asset() -> None:
    body = {**video_35(embedding_scope=["clip"]), "embedding_uncertainty": True}
    assert check_task_body(body).embedding_uncertainty


def test_base64_size_is_413_and_last() -> None:
    limits = V2Limits(base64_media_bytes=30)
    body = video_30(media_source={"base64_string": base64.b64encode(b"x" * 31).decode()})
    with pytest.raises(PayloadTooLargeError) as info:
        check_task_body(body, limits)
    err = info.value
    assert (err.status, err.code, err.parameter) == (
        413,
        "content_too_large",
        "video.media_source.base64_string",
    )
    assert err.message == "File size (0.0 MB) exceeds maximum limit of 0 MB."
    body["video"]["start_sec"] = -1  # a 400 comes first
    with pytest.raises(ParameterError):
        check_task_body(body, limits)
    body["video"]["start_sec"] = 0
    body["video"]["media_source"]["base64_string"] = base64.b64encode(b"x" * 30).decode()
    check_task_body(body, limits)  # inclusive


SYNC_CASES: list[tuple[dict[str, Any], str, str]] = [
    (
        {"input_type": "text", "model_name": "marengo3.0", "text": {}},
        "parameter_not_provided",
        "text.input_text",
    ),
    (
        {"input_type": "text", "model_name": "marengo3.5", "text": {"input_text": "x"}},
        "parameter_invalid",
        "input_type",
    ),
    (
        {"input_type": "text", "model_name": "marengo3.0", "text": {"input_text": "x " * 501}},
        "parameter_invalid",
        "text.input_text",
    ),
    (
        {
            "input_type": "text",
            "model_name": "marengo3.0",
            "auto_truncate": True,
            "text": {"input_text": "x"},
        },
        "parameter_invalid",
        "auto_truncate",
    ),
    (
        {
            "input_type": "video",
            "model_name": "marengo3.0",
            "video": {"media_source": {"url": URL}, "embedding_scope": ["local"]},
        },
        "parameter_invalid",
        "video.embedding_scope",
    ),
    (
        {
            "input_type": "video",
            "model_name": "marengo3.0",
            "video": {"media_source": {"url": URL}, "time_based_metadata": []},
        },
        "parameter_unknown",
        "video.time_based_metadata",
    ),
    (
        {"input_type": "multi_input", "model_name": "marengo3.5", "multi_input": {}},
        "parameter_not_provided",
        "multi_input.media_sources",
    ),
    (
        {
            "input_type": "multi_input",
            "model_name": "marengo3.5",
            "multi_input": {"media_sources": [{"url": URL}]},
        },
        "parameter_not_provided",
        "multi_input.media_sources[0].media_type",
    ),
    (
        {
            "input_type": "multi_input",
            "model_name": "marengo3.0",
            "multi_input": {"media_sources": [{"media_type": "video", "url": URL}]},
        },
        "parameter_invalid",
        "multi_input.media_sources[0].media_type",
    ),
    (
        {
            "input_type": "multi_input",
            "model_name": "marengo3.5",
            "multi_input": {
                "input_text": "a <@kit>",
                "media_sources": [{"name": "k", "media_type": "image", "url": URL}],
            },
        },
        "parameter_invalid",
        "multi_input.input_text",
    ),
    (
        {
            "input_type": "multi_input",
            "model_name": "marengo3.5",
            "multi_input": {
                "media_sources": [
                    {"media_type": "image", "url": URL},
                    {"media_type": "audio", "url": URL},
                ]
            },
        },
        "parameter_invalid",
        "multi_input.input_text",
    ),
]


@pytest.mark.parametrize(("body", "code", "path"), SYNC_CASES)
def test_sync_rules(body: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(ParameterError) as info:
        check_embed_body(copy.deepcopy(body))
    assert (info.value.code, info.value.parameter) == (code, path), info.value.message


def test_sync_multi_input_size_path() -> None:
    body = embed_body(
        "marengo3.5",
        MultiInput(
            "a player in <@kit>", [MultiSource("image", MediaSource.base64(b"x" * 40), "kit")]
        ),
    )
    with pytest.raises(PayloadTooLargeError) as info:
        check_embed_body(body, V2Limits(multi_source_bytes=39))
    assert info.value.parameter == "multi_input.media_sources[0].base64_string"
    spec = check_embed_body(body)
    assert spec.text == "a player in <@kit>" and spec.sources[0].name == "kit"
    image = check_embed_body(embed_body("marengo3.0", ImageInput(MediaSource.url(URL))))
    assert image.media is not None and image.media.source.kind == "url"


def test_response_models_round_trip_through_the_fast_parser() -> None:
    conv = converter()
    wire = {
        "_id": "6743a1b2c3d4e5f60123abce",
        "status": "ready",
        "created_at": "2026-11-25T10:00:00Z",
        "data": [
            {
                "embedding": [0.5, -0.25, 0.125],
                "embedding_option": "visual",
                "embedding_scope": "clip",
                "start_sec": 0.0,
                "end_sec": 6.0,
            },
            {
                "embedding": [0.1, 0.2, 0.3],
                "embedding_uncertainty": [0.0, 0.01, 0.02],
                "embedding_option": "visual",
                "embedding_scope": "asset",
                "start_sec": 0.0,
                "end_sec": 12.0,
            },
        ],
        "metadata": {
            "input_type": "video",
            "clip_length": 6,
            "embedding_scopes": ["clip", "asset"],
            "embedding_options": ["visual"],
            "duration": 12.0,
        },
    }
    parsed = loads_vectors(dumps(wire))
    assert isinstance(parsed["data"][1]["embedding_uncertainty"], np.ndarray)
    assert parsed["metadata"]["embedding_options"] == ["visual"]  # not a vector
    task = conv.structure(parsed, V2Task)
    assert task.metadata is not None and task.metadata.input_type == "video"
    assert task.matrix(option="visual", scope="clip").tolist() == [[0.5, -0.25, 0.125]]
    assert task.data is not None and task.data[0].embedding.dtype == np.float32  # type: ignore[attr-defined]
    back = loads_vectors(dumps(conv.unstructure(task)))
    assert back["metadata"]["input_type"] == "video"  # the SDK needs it to pick the variant
    assert "error" not in back and back["data"][0]["embedding_option"] == "visual"
    text = conv.structure(
        {"data": [{"embedding": [1.0], "embedding_option": None}]}, EmbedV2Response
    )
    assert text.metadata is None and text.array().shape == (1,)
    summary = conv.structure(
        {
            "_id": "a" * 24,
            "status": "processing",
            "model_name": "marengo3.0",
            "video_embedding": {"metadata": {"video_clip_length": 6}},
        },
        TaskSummary,
    )
    assert summary.video_embedding is not None and summary.status.value == "processing"


def test_time_based_metadata_renders() -> None:
    item = VideoInput(
        MediaSource.asset("6743a1b2c3d4e5f601234567"),
        embedding_type=["separate_embedding", "fused_embedding"],
        time_based_metadata=[TimeBasedMetadata(3.0, 3.0, "goal by number 9")],
        embedding_scope=["clip"],
    )
    body = task_body("marengo3.5", item, embedding_dimension=256, embedding_uncertainty=True)
    spec = check_task_body(body)
    assert spec.media.time_based_metadata[0].text == "goal by number 9"
    assert spec.embedding_uncertainty and spec.embedding_dimension == 256


def test_rate_limit_headers_parse_every_dimension() -> None:
    from aioembed._ratelimits import RateLimits, RateLimitWindow

    limits = RateLimits.from_headers(
        {
            "X-Ratelimit-Limit": "100",
            "X-Ratelimit-Remaining": "7",
            "x-ratelimit-duration-limit": "3600",
            "x-ratelimit-duration-remaining": "12.5",
            "x-ratelimit-duration-reset": "1795655517",
            "x-ratelimit-duration-color": "blue",
            "x-ratelimit-limit-bogus": "x",
            "content-type": "application/json",
        }
    )
    assert limits is not None and limits.requests == RateLimitWindow(limit=100, remaining=7)
    assert limits.duration == RateLimitWindow(limit=3600, remaining=12.5, reset=1795655517)
    assert set(limits.windows) == {"requests", "duration"}
    assert RateLimits.from_headers({"content-type": "text/plain"}) is None
    err = ParameterError("bad", parameter="video.start_sec")
    assert err.parameter == "video.start_sec" and err.details == {"parameter": "video.start_sec"}
    assert err.rate_limits is None
