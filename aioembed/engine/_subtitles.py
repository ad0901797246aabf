"""Text cues of a media file's subtitle stream, for the v2 ``transcription`` option.

Only text subtitles carry words (SubRip, ASS/SSA, WebVTT, MP4 ``mov_text``);
bitmap ones (DVD, PGS) give no cues. The stream read is the one marked
*default*, else the first. Reading demuxes that stream alone (no picture or
sound is decoded); the number of cues and their text are capped so a hostile
file cannot make the task hold unbounded text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
import av

from ._media import MediaError, MediaSource, _broken, _short, open_media

__all__ = ["MAX_CUES", "MAX_CUE_CHARS", "Cue", "cue_text", "read_cues"]

#: Cues after this many are ignored.
MAX_CUES = 20_000
#: Characters kept of one cue.
MAX_CUE_CHARS = 2_000


@attrs.frozen
class Cue:
    """One subtitle: shown over ``[start, end)`` seconds, ``text`` with lines joined by spaces."""

    start: float
    end: float
    text: str


def _pick(streams: Sequence[Any]) -> Any:
    for stream in streams:
        if stream.disposition & av.stream.Disposition.default:
            return stream
    return streams[0]


# ASS override blocks ({\i1}, {\pos(1,2)}) and escapes (\N, \n hard/soft breaks, \h).
_ASS_MARKUP = re.compile(r"\{[^}]*\}|\\[Nnh]")


def _text(sub: Any) -> str:
    """A decoded subtitle's words: FFmpeg hands every text format over as ASS."""
    raw = getattr(sub, "dialogue", None) or getattr(sub, "text", None) or b""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(_ASS_MARKUP.sub(" ", text).split())[:MAX_CUE_CHARS]


def read_cues(source: MediaSource) -> list[Cue] | None:
    """The cues of ``source``'s subtitle stream in time order; ``None`` if it has none.

    Raises :class:`MediaError` ``video_file_broken`` if the file does not open or
    its subtitle packets cannot be read.
    """
    with open_media(source) as container:
        if not container.streams.subtitles:
            return None
        stream = _pick(container.streams.subtitles)
        cues: list[Cue] = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                for sub in packet.decode():
                    text = _text(sub)
                    if text:
                        cues.append(Cue(round(start, 6), round(max(end, start), 6), text))
                if len(cues) >= MAX_CUES:
                    break
        except MediaError:
            raise
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise _broken(f"its subtitle stream cannot be read ({_short(exc)})") from None
    cues.sort(key=lambda c: (c.start, c.end))
    return cues[:MAX_CUES]


def cue_text(cues: Sequence[Cue], start: float, end: float) -> str:
    """The text of the cues shown during ``[start, end)`` (a cue that ends where the
    span starts is not in it; a zero-length cue at ``start`` is), space-joined."""
    return " ".join(c.text for c in cues if c.start < end and (c.end > start or c.start >= start))
