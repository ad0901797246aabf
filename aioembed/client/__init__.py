"""The asyncio SDK: :class:`AsyncClient` and its resources."""

from ._batch import BatchItem, Outcome
from ._client import DEFAULT_BASE_URL, AsyncClient
from ._config import Limits, RetryPolicy, Timeouts
from ._embed import Embed
from ._journal import Journal, JournalEntry
from ._streams import ProducerStream
from ._tasks import EmbedTasks, TaskHandle
from ._upload import FileInput, ProgressCallback
from ._watch import StatusUpdate

__all__ = [
    "DEFAULT_BASE_URL",
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
    "RetryPolicy",
    "StatusUpdate",
    "TaskHandle",
    "Timeouts",
]
