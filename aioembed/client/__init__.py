"""The asyncio SDK: :class:`AsyncClient` and its resources."""

from ._client import DEFAULT_BASE_URL, AsyncClient
from ._config import Limits, RetryPolicy, Timeouts
from ._embed import Embed
from ._tasks import EmbedTasks, TaskHandle
from ._upload import FileInput, ProgressCallback

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncClient",
    "Embed",
    "EmbedTasks",
    "FileInput",
    "Limits",
    "ProgressCallback",
    "RetryPolicy",
    "TaskHandle",
    "Timeouts",
]
