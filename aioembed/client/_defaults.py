"""The SDK's defaults, each written once; the CLI and the README use these names.

Parameter names follow the wire (and the official SDK): ``video_clip_length``,
``video_embedding_scope``, ``embedding_option``, ``sleep_interval``.
"""

from __future__ import annotations

from .._params import DEFAULT_CLIP_LENGTH

__all__ = [
    "DEFAULT_CLIP_LENGTH",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MODEL",
    "DEFAULT_SCOPES",
    "DEFAULT_SLEEP_INTERVAL",
]

#: ``model_name`` when none is given.
DEFAULT_MODEL = "Marengo-retrieval-2.7"
#: ``video_embedding_scope`` when none is given (the contract's default).
DEFAULT_SCOPES: tuple[str, ...] = ("clip",)
#: Seconds before the first re-poll of a waiting task (``wait_for_done``, ``wait``,
#: ``embed_many``, ``watch_many``). Short, because the interval stretches while a
#: task stays slow: a short task is seen done promptly, a long one costs few polls.
DEFAULT_SLEEP_INTERVAL = 1.0
#: Seconds the poll interval stretches to at most.
DEFAULT_MAX_INTERVAL = 10.0
#: Items ``embed_many`` keeps in flight (uploading, processing or being retrieved).
#: Requests and uploads are further capped client-wide by :class:`~aioembed.Limits`.
DEFAULT_CONCURRENCY = 32
