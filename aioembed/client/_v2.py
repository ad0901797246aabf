"""``client.embed.v2``: synchronous Embed API v2 embeddings, and :attr:`EmbedV2.tasks`."""

from __future__ import annotations

from ..contract.v2 import (
    EMBED_PATH,
    EmbedInput,
    EmbedV2Response,
    ModelName,
    TextInput,
    check_embed_body,
    embed_body,
)
from ._transport import Transport
from ._v2_http import post_json
from ._v2_media import resolve_files
from ._v2_tasks import EmbedV2Tasks

__all__ = ["EmbedV2"]


class EmbedV2:
    """``POST /embed-v2`` plus :attr:`tasks` (``/embed-v2/tasks``), on the client's session."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.tasks = EmbedV2Tasks(transport)

    async def create(
        self,
        item: EmbedInput | str,
        *,
        model_name: ModelName | str = ModelName.MARENGO_3_0,
        embedding_dimension: int | None = None,
        embedding_uncertainty: bool | None = None,
        auto_truncate: bool | None = None,
    ) -> EmbedV2Response:
        """Embed one input now: ``TextInput`` (or a plain string), ``ImageInput``,
        ``TextImageInput``, ``AudioInput``, ``VideoInput`` (marengo3.0) or
        ``MultiInput`` (marengo3.5's only type; 3.0 takes images).

        Checked before sending with the server's rules (:class:`~aioembed.ParameterError`
        with its ``code``, message and ``parameter``); local files go inline as
        base64 within the size limits. Safe to retry: it creates nothing.
        """
        if isinstance(item, str):
            item = TextInput(item)
        resolved = await resolve_files(item)
        body = embed_body(
            model_name,
            resolved,  # type: ignore[arg-type]
            embedding_dimension=embedding_dimension,
            embedding_uncertainty=embedding_uncertainty,
            auto_truncate=auto_truncate,
        )
        check_embed_body(body)
        return await post_json(self._t, EMBED_PATH, body, EmbedV2Response, idempotent=True)
