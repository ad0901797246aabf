"""The asyncio SDK: :class:`AsyncClient` and its resources."""

from ._assets import Asset, AssetFailedError, Assets
from ._batch import BatchItem, Outcome
from ._client import DEFAULT_BASE_URL, AsyncClient
from ._config import Limits, RetryPolicy, Timeouts
from ._defaults import (
    DEFAULT_CLIP_LENGTH,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_INTERVAL,
    DEFAULT_MODEL,
    DEFAULT_SCOPES,
    DEFAULT_SLEEP_INTERVAL,
)
from ._embed import Embed
from ._journal import Journal, JournalEntry
from ._pacing import RateBudget
from ._resource import EmbedTasks
from ._streams import ProducerStream
from ._tasks import TaskCalls, TaskHandle
from ._upload import FileInput, ProgressCallback
from ._watch import StatusUpdate

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CLIP_LENGTH",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MODEL",
    "DEFAULT_SCOPES",
    "DEFAULT_SLEEP_INTERVAL",
    "Asset",
    "AssetFailedError",
    "Assets",
    "AsyncClient",
    "BatchItem",
    "Embed",
    "EmbedTasks",
    "FileInput",
    "Journal",
    "JournalEntry",
    "Limits",
    "Outcome",
    "ProducerStream",
    "ProgressCallback",
    "RateBudget",
    "RetryPolicy",
    "StatusUpdate",
    "TaskCalls",
    "TaskHandle",
    "Timeouts",
]
