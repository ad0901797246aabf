"""The Embed API v2 surface: inputs, values and results for ``client.embed.v2``.

from aioembed.v2 import Dynamic, MediaSource, VideoInput

task = await client.embed.v2.tasks.create(
    VideoInput(MediaSource.url("https://example.com/match.mp4"), segmentation=Dynamic(4)),
    model_name="marengo3.0",
)
result = await task.wait()
clips = result.matrix(option="visual", scope="clip")   # (n, 512) float32
"""

from .contract.v2 import (
    AudioInput,
    AudioMetadata,
    DocumentInput,
    DocumentMetadata,
    Dynamic,
    EmbeddingItem,
    EmbeddingOption,
    EmbeddingScope,
    EmbeddingType,
    EmbedV2Response,
    Fixed,
    ImageInput,
    ImageMetadata,
    InputType,
    MediaSource,
    MediaType,
    ModelName,
    MultiInput,
    MultiInputMetadata,
    MultiSource,
    TaskCreated,
    TaskSummary,
    TextImageInput,
    TextInput,
    TimeBasedMetadata,
    Usage,
    V2Limits,
    V2Task,
    V2TaskError,
    V2TaskPage,
    VideoInput,
    VideoMetadata,
)
from .client._v2 import EmbedV2
from .client._v2_tasks import EmbedV2Tasks, V2TaskHandle

__all__ = [
    "AudioInput",
    "AudioMetadata",
    "DocumentInput",
    "DocumentMetadata",
    "Dynamic",
    "EmbedV2",
    "EmbedV2Response",
    "EmbedV2Tasks",
    "EmbeddingItem",
    "EmbeddingOption",
    "EmbeddingScope",
    "EmbeddingType",
    "Fixed",
    "ImageInput",
    "ImageMetadata",
    "InputType",
    "MediaSource",
    "MediaType",
    "ModelName",
    "MultiInput",
    "MultiInputMetadata",
    "MultiSource",
    "TaskCreated",
    "TaskSummary",
    "TextImageInput",
    "TextInput",
    "TimeBasedMetadata",
    "Usage",
    "V2Limits",
    "V2Task",
    "V2TaskError",
    "V2TaskHandle",
    "V2TaskPage",
    "VideoInput",
    "VideoMetadata",
]
