"""aioembed: an asyncio toolkit for video embeddings.

The SDK (:class:`AsyncClient`) speaks the TwelveLabs Embed API; ``aioembed.server``
serves the same API locally on top of ``aioembed.engine``.
"""

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

__version__ = "0.1.0"

__all__ = [
    "APIStatusError",
    "AioEmbedError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "EmbedResponse",
    "EmbedTask",
    "EmbeddingScope",
    "MediaEmbedding",
    "NotFoundError",
    "PageInfo",
    "ParameterError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RequestTimeoutError",
    "Segment",
    "ServerError",
    "TaskError",
    "TaskFailedError",
    "TaskPage",
    "TaskProgress",
    "TaskStatus",
    "TransportError",
    "VideoEmbedding",
    "VideoMetadata",
    "WaitTimeoutError",
    "__version__",
]
