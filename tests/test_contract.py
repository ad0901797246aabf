"""One contract, two ends: the server renders with the models and converter the client
parses with, its routes and OpenAPI document come from the same operation table, and
the client's form encoder and the server's form reader agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aioembed import _wire
from aioembed._params import MODELS, check_task_params
from aioembed.contract import assets, v1
from aioembed.contract.v2 import operations as v2_operations
from aioembed.contract.v1.forms import read_task_params
from aioembed.errors import ParameterError
from aioembed.server import ServerConfig, create_app
from aioembed.server._openapi import openapi_document
from aioembed.server._render import task_model
from aioembed.server._store import SegmentRecord, TaskRecord

_READY = TaskRecord(
    id="c" * 24,
    owner="o",
    model_name="marengo3.0",
    status="ready",
    created_at=1.7e9,
    updated_at=1.7e9 + 5,
    clip_length=6.0,
    scopes=("clip",),
    options=("visual", "audio"),
    duration=8.0,
)


def test_task_bytes_are_the_contract_s() -> None:
    vec = np.array([0.5, -1.0], dtype="<f4").tobytes()
    segs = [SegmentRecord(0.0, 6.0, "clip", "visual", vec)]
    body = _wire.dumps(v1.unstructure(task_model(_READY, segments=segs)))
    assert body == (
        b'{"_id":"cccccccccccccccccccccccc","model_name":"marengo3.0","status":"ready",'
        b'"created_at":"2023-11-14T22:13:20Z","updated_at":"2023-11-14T22:13:25Z",'
        b'"video_embedding":{"metadata":{"input_url":null,"input_filename":null,'
        b'"video_clip_length":6.0,"video_embedding_scope":["clip"],'
        b'"video_embedding_option":["visual","audio"],"duration":8.0},'
        b'"segments":[{"float":[0.5,-1.0],"start_offset_sec":0.0,"end_offset_sec":6.0,'
        b'"embedding_scope":"clip","embedding_option":"visual"}]}}'
    )
    parsed = v1.structure(_wire.loads_vectors(body), v1.EmbedTask)
    assert parsed.id == _READY.id and parsed.segments[0].embedding_option == "visual"
    assert list(parsed.segments[0].vector) == [0.5, -1.0]


def test_sync_embed_and_error_bodies() -> None:
    text = v1.EmbedResponse("m", text_embedding=v1.MediaEmbedding([v1.Segment([1.0])]))
    assert _wire.dumps(v1.unstructure(text)) == (
        b'{"model_name":"m","text_embedding":{"segments":[{"float":[1.0]}]}}'
    )
    error = v1.ErrorBody("parameter_invalid", "bad", request_id="r")
    assert _wire.dumps(v1.unstructure(error)) == (
        b'{"code":"parameter_invalid","message":"bad","request_id":"r"}'
    )
    assert v1.structure({"_id": "x", "extra": 1}, v1.TaskCreated) == v1.TaskCreated("x")


def test_converters_are_made_not_configured_on_import() -> None:
    a, b = v1.make_converter(), v1.make_converter()
    assert a is not b
    assert a.unstructure(v1.TaskCreated("x")) == {"_id": "x"}


class _Form:
    """A received form as the server's reader sees it."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.fields: dict[str, list[str]] = {}
        for k, v in pairs:
            self.fields.setdefault(k, []).append(v)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        return self.fields.get(name, [])


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"start": 1.5, "end": 9.0, "clip_length": 2.5, "scopes": ["clip", "video"]},
        {"video_url": "https://example.com/v.mp4", "clip_length": 10.0},
        {"start": 3.0, "end": 4.0},
        {"clip_length": 1.0},
        {"scopes": ["frame"]},
    ],
)
def test_encoder_and_reader_agree(kw: dict[str, Any]) -> None:
    pairs = v1.encode_create_task("marengo3.0", **kw)
    assert all(name in v1.CREATE_TASK.names for name, _ in pairs)
    has_file = "video_url" not in kw
    local: Any
    try:
        local = check_task_params(
            "marengo3.0",
            start=kw.get("start") or 0.0,
            end=kw.get("end"),
            clip_length=kw.get("clip_length", 6.0),
            scopes=kw.get("scopes") or ["clip"],
            has_file=has_file,
            video_url=kw.get("video_url"),
        )
    except ParameterError as e:
        local = (e.code, e.message)
    try:
        remote: Any = read_task_params(_Form(pairs), has_file=has_file, known_models=MODELS)
    except ParameterError as e:
        remote = (e.code, e.message)
    assert local == remote


def test_routes_and_document_follow_the_contract(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path, api_keys=("k",))
    app = create_app(config)
    mounted = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    expected = {(op.method, v1.PREFIX + op.path) for op in v1.API.operations}
    shared = {(op.method, assets.PREFIX + op.path) for op in assets.API.operations}
    shared |= {(op.method, v2_operations.PREFIX + op.path) for op in v2_operations.API.operations}
    assert expected | shared <= mounted
    assert mounted - expected - shared == {("GET", "/health")}  # the unversioned liveness probe
    doc = openapi_document(config)
    assert doc["servers"] == [{"url": v1.PREFIX}]
    assert {(m.upper(), v1.PREFIX + p) for p, ops in doc["paths"].items() for m in ops} == (
        expected
    )
    schemas = doc["components"]["schemas"]
    for ops in doc["paths"].values():
        for op in ops.values():
            ref = op["responses"]["200"]["content"]["application/json"]["schema"].get("$ref")
            assert ref is None or ref.rsplit("/", 1)[1] in schemas
    assert set(schemas["EmbedTask"]["properties"]) >= {"_id", "status", "video_embedding"}
    assert "float" in schemas["Segment"]["properties"]
    form = schemas["CreateEmbeddingTaskForm"]["properties"]
    assert list(form) == list(v1.CREATE_TASK.names)
    assert form["model_name"]["enum"] == list(MODELS)


def test_the_sdk_core_imports_without_the_extras() -> None:
    """aiohttp, attrs, cattrs, anyio are enough to import the client and the contract
    (the scale extra's asyncpg and aiobotocore included among the missing)."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('numpy', 'orjson', 'av', 'platformdirs', 'rich',"
        " 'pyarrow', 'asyncpg', 'aiobotocore', 'botocore'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import aioembed\n"
        "from aioembed.contract import v1\n"
        "t = v1.structure({'_id': 'x', 'status': 'ready'}, v1.EmbedTask)\n"
        "assert aioembed.AsyncClient and t.id == 'x'\n"
        "assert 'aioembed.server' not in sys.modules and 'aioembed.engine' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
