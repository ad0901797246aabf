"""aioembed: an asyncio toolkit for video embeddings.

The SDK (:class:`AsyncClient`) speaks the TwelveLabs Embed API; ``aioembed.server``
serves the same API locally on top of ``aioembed.engine``.
"""

from .client import AsyncClient, Limits, RetryPolicy, TaskHandle, Timeouts
from .errors import (
    AioEmbedError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TaskFailedError,
    TransportError,
    WaitTimeoutError,
)
from .models import (
    EmbeddingScope,
    EmbedResponse,
    EmbedTask,
    MediaEmbedding,
    PageInfo,
    Segment,
    TaskError,
    TaskPage,
    TaskProgress,
    TaskStatus,
    VideoEmbedding,
    VideoMetadata,
)

from ._version import __version__

__all__ = [
    "APIStatusError",
    "AioEmbedError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "EmbedResponse",
    "EmbedTask",
    "EmbeddingScope",
    "Limits",
    "MediaEmbedding",
    "NotFoundError",
    "PageInfo",
    "ParameterError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryPolicy",
    "Segment",
    "ServerError",
    "TaskError",
    "TaskFailedError",
    "TaskHandle",
    "TaskPage",
    "TaskProgress",
    "TaskStatus",
    "Timeouts",
    "TransportError",
    "VideoEmbedding",
    "VideoMetadata",
    "WaitTimeoutError",
    "__version__",
]
