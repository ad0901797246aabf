"""Backends own their model catalogue (names, dimensions, options and their kinds).

The wire (which names the contract admits) stays in ``aioembed._params`` for the
SDK; the catalogue and the registry import without NumPy or PyAV.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import numpy as np
import pytest
from _backends import TINY, TinyBackend, register

from aioembed._params import MODELS
from aioembed.engine import (
    CONTRACT_CATALOGUE,
    OptionKind,
    backend_catalogue,
    embed_text,
    get_model,
)


def test_catalogue_and_registry_import_without_numpy_or_av() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["numpy"] = sys.modules["av"] = None  # a client-only install
        import aioembed.engine as engine
        from aioembed.engine import CONTRACT_CATALOGUE, Catalogue, Model, available_backends
        assert "features" in available_backends()
        print(",".join(CONTRACT_CATALOGUE.names))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ",".join(MODELS)


def test_builtin_backend_serves_the_contract_models() -> None:
    assert backend_catalogue() == CONTRACT_CATALOGUE
    for info in MODELS.values():
        model = get_model(info.name)
        assert (model.dims, model.options) == (info.dims, tuple(info.video_options))
    assert get_model("marengo3.0").kind("visual") is OptionKind.VISUAL
    with pytest.raises(ValueError):
        get_model("marengo3.0").kind("visual-text")


def test_a_backend_serves_its_own_models() -> None:
    register()
    assert backend_catalogue(TINY) is TinyBackend.catalogue
    v = embed_text("hello", model_name="tiny-1", backend=TINY)
    assert v.shape == (8,) and int(np.argmax(v)) == 2
    with pytest.raises(KeyError, match="tiny-1"):
        embed_text("hello", model_name="marengo3.0", backend=TINY)
