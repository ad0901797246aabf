"""``client.embed``: synchronous text / image / audio embeddings, and the tasks resource."""

from __future__ import annotations

from typing import Any

from .._params import EMBED_INPUTS, check_embed_input
from ..contract import v1
from ..contract.v1 import structure
from ..models import EmbedResponse
from ._defaults import DEFAULT_MODEL
from ._resource import EmbedTasks
from ._transport import Transport
from ._upload import FileInput, as_source
from ._v2 import EmbedV2

__all__ = ["Embed"]


def _response(data: Any) -> EmbedResponse:
    return structure(data, EmbedResponse)


class Embed:
    """``POST /embed`` plus :attr:`tasks` for video embedding tasks."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.tasks = EmbedTasks(transport)
        #: Embed API v2 (``/embed-v2``, ``/embed-v2/tasks``).
        self.v2 = EmbedV2(transport)

    async def create(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        text: str | None = None,
        image_url: str | None = None,
        image_file: FileInput | None = None,
        audio_url: str | None = None,
        audio_file: FileInput | None = None,
        audio_start_offset_sec: float | None = None,
    ) -> EmbedResponse:
        """Embed exactly one text, image or audio input and return its vector(s).

        Raises :class:`~aioembed.ParameterError` before sending when no input or
        more than one is given, with the server's code and message.
        """
        values = dict(zip(EMBED_INPUTS, (text, image_url, image_file, audio_url, audio_file)))
        name = check_embed_input(model_name, [k for k, v in values.items() if v is not None])
        value = values[name]
        assert value is not None  # check_embed_input named a given field
        fields = v1.encode_embed(model_name, audio_start_offset_sec=audio_start_offset_sec)
        if name.endswith("_file"):
            source = as_source(value, name=name, max_bytes=self._t.limits.max_upload_bytes)
            return await self._t.post_form(
                "embed", fields, _response, file_field=name, source=source, idempotent=True
            )
        fields.append((name, str(value)))
        return await self._t.post_form("embed", fields, _response, idempotent=True)
