"""``client.embed``: synchronous text / image / audio embeddings, and the tasks resource."""

from __future__ import annotations

from .._params import invalid, not_provided
from .._wire import structure
from ..models import EmbedResponse
from ._tasks import DEFAULT_MODEL, EmbedTasks, _fmt_number
from ._transport import Transport
from ._upload import FileInput, as_source

__all__ = ["Embed"]

_INPUTS = ("text", "image_url", "image_file", "audio_url", "audio_file")


class Embed:
    """``POST /embed`` plus :attr:`tasks` for video embedding tasks."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.tasks = EmbedTasks(transport)

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
        more than one is given.
        """
        given = {
            k: v
            for k, v in zip(_INPUTS, (text, image_url, image_file, audio_url, audio_file))
            if v is not None
        }
        if not model_name:
            raise not_provided("model_name")
        if not given:
            raise not_provided("text")
        if len(given) > 1:
            raise invalid(
                next(iter(given)),
                f"Provide exactly one of {', '.join(_INPUTS)}; got {', '.join(given)}.",
            )
        ((name, value),) = given.items()
        fields = [("model_name", model_name)]
        if audio_start_offset_sec is not None:
            fields.append(("audio_start_offset_sec", _fmt_number(audio_start_offset_sec)))
        if name.endswith("_file"):
            source = as_source(value, name=name, max_bytes=self._t.limits.max_upload_bytes)
            data = await self._t.post_form(
                "embed", fields, file_field=name, source=source, idempotent=True
            )
        else:
            data = await self._t.post_form("embed", [*fields, (name, str(value))], idempotent=True)
        return structure(data, EmbedResponse)
