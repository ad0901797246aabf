"""Server configuration: frozen values, built by the caller (or the CLI), never read from globals."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import attrs

from ..contract import assets as _assets
from ..contract.v2 import V2Limits
from .._params import MAX_UPLOAD_BYTES, MediaLimits

__all__ = [
    "MediaLimits",
    "RateLimit",
    "ServerConfig",
    "parse_media_rate_limit",
    "parse_rate_limit",
]

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


@attrs.frozen
class RateLimit:
    """A token bucket per API key: ``requests`` tokens, refilled evenly over ``per`` seconds.

    A full bucket allows a burst of ``requests``; after that one request every
    ``per / requests`` seconds.
    """

    requests: int = attrs.field(validator=attrs.validators.gt(0))
    per: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.requests / self.per


def parse_rate_limit(text: str) -> RateLimit | None:
    """``"100/60"``, ``"100/min"``, ``"5/s"``, ``"300/5m"`` or ``"100"`` (per minute).

    ``"off"``, ``"none"`` or ``"0"`` -> ``None`` (no limit). Raises ``ValueError``
    on anything else.
    """
    text = text.strip().lower().replace(" ", "")
    if text in ("", "off", "none", "0"):
        return None
    m = re.fullmatch(r"(\d+)(?:/(\d+(?:\.\d+)?)?([a-z]*))?", text)
    if not m or (m.group(2) is None and not m.group(3) and "/" in text):
        raise ValueError(f"rate limit {text!r} should look like 100/60, 100/min or 5/s")
    count, number, unit = int(m.group(1)), m.group(2), m.group(3) or ""
    if unit and unit not in _UNITS and unit.removesuffix("s") not in _UNITS:
        raise ValueError(f"unknown rate limit unit {unit!r} (use s, min, h or d)")
    scale = _UNITS.get(unit) or _UNITS.get(unit.removesuffix("s"), 1.0) if unit else 1.0
    if "/" not in text:
        per = 60.0
    else:
        per = (float(number) if number is not None else 1.0) * scale
    if count <= 0:
        return None
    if per <= 0:
        raise ValueError(f"rate limit {text!r} has an empty window")
    return RateLimit(count, per)


def parse_media_rate_limit(text: str) -> RateLimit | None:
    """Media **minutes** per window, spelt like :func:`parse_rate_limit` (``"600/h"``:
    600 minutes of media per hour), as a bucket of media **seconds** (the unit of the
    ``X-Ratelimit-Duration-*`` headers). ``"off"`` -> ``None``."""
    limit = parse_rate_limit(text)
    if limit is None:
        return None
    return RateLimit(limit.requests * 60, limit.per)


def _redacted_dsn(dsn: str | None) -> str:
    # A database URL may hold a password: never in a repr, a log line or a traceback.
    from ._redact import redact_url

    return repr(None if dsn is None else redact_url(dsn))


def _check_database(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("database should be a postgresql:// URL")


def _check_media(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not value.startswith("s3://"):
        raise ValueError("media should be an s3://bucket/prefix URL")


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _check_allow(_: object, __: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    for entry in value:
        if "/" in entry or _is_ip(entry):
            ipaddress.ip_network(entry, strict=False)  # raises ValueError when malformed


def _positive_or_none(_: object, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attr.name} should be positive or None, got {value!r}")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Everything the local server needs to know; all durations in seconds, sizes in bytes.

    ``api_keys`` empty means every request answers ``401``: the CLI generates a
    key when none is given. ``url_allow`` holds CIDRs (``127.0.0.0/8``), IPs or
    host names that ``video_url``/``image_url``/``audio_url`` may point at even
    though they are private, loopback or link-local; empty refuses all of those.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = attrs.field(default=Path("aioembed-data"), converter=Path)
    #: Video worker processes; each embeds one task at a time.
    workers: int = attrs.field(factory=_default_workers, validator=attrs.validators.gt(0))
    #: Processes for synchronous ``POST /embed`` work (probes have ``probe_workers``).
    sync_workers: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    api_keys: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: Operator keys: accepted like ``api_keys`` (each is a tenant of its own), and
    #: ``GET /v1.3/metrics`` shows them the whole server (every key's requests and
    #: tasks, queue and worker processes) instead of their own requests and tasks.
    admin_keys: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    rate_limit: RateLimit | None = None
    #: Seconds of media per window for one key (``requests`` counts seconds here): task
    #: creates and sync audio/video embeddings of known duration are debited; over it
    #: ``429 too_many_requests``. ``None``: no media budget (the default).
    media_rate_limit: RateLimit | None = None
    #: The size limit of every input: uploaded files and files fetched from URLs.
    max_upload_bytes: int = attrs.field(default=MAX_UPLOAD_BYTES, validator=attrs.validators.gt(0))
    #: Longest single non-file form field (text, URL, numbers).
    max_field_bytes: int = 64 * 1024
    url_allow: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_check_allow)
    url_fetch_timeout: float = 300.0
    url_connect_timeout: float = 10.0
    url_max_redirects: int = 5
    #: URL fetches in flight at most, server-wide.
    url_fetch_concurrency: int = attrs.field(default=32, validator=attrs.validators.gt(0))
    #: URL fetches in flight at most for one API key (its other fetches wait their turn).
    url_fetch_per_key: int = attrs.field(default=4, validator=attrs.validators.gt(0))
    #: Slowest URL transfer allowed (bytes/s) over each ``url_rate_window`` seconds,
    #: the wait for the answer's headers included; slower fails the input at once.
    url_min_rate: int = attrs.field(default=8 * 1024, validator=attrs.validators.ge(0))
    url_rate_window: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    media_limits: MediaLimits = MediaLimits()
    #: Embed API v2 size and count limits (base64 media, images, multi_input sources).
    v2_limits: V2Limits = V2Limits()
    #: Seconds a v2 task's result stays retrievable after it was ready; then the task
    #: answers ``failed`` ("The embedding result is no longer available ...").
    v2_result_retention: float = 7 * 86400.0
    #: Largest ``POST /assets`` direct upload (video, audio, documents; images stay at
    #: 32 MB); past it ``413 content_too_large`` while the body streams in.
    asset_direct_max_bytes: int = attrs.field(
        default=_assets.DIRECT_MAX_BYTES, validator=attrs.validators.gt(0)
    )
    #: Largest ``total_size`` of a multipart upload session (``413 content_too_large``).
    asset_multipart_max_bytes: int = attrs.field(
        default=_assets.MULTIPART_MAX_BYTES, validator=attrs.validators.gt(0)
    )
    #: A multipart session's chunk size (bytes), grown for files that would need more
    #: than ``upload_max_chunks`` chunks. Clients hold about a chunk per part in flight.
    upload_chunk_size: int = attrs.field(
        default=_assets.CHUNK_SIZE, validator=attrs.validators.gt(0)
    )
    upload_max_chunks: int = attrs.field(
        default=_assets.MAX_CHUNKS, validator=attrs.validators.gt(0)
    )
    #: Seconds a presigned part URL stays valid (capped by its session's expiry).
    upload_url_ttl: float = attrs.field(default=_assets.URL_TTL, validator=attrs.validators.gt(0))
    #: Seconds an upload session may take; then its parts are dropped, its asset ``failed``.
    upload_session_ttl: float = attrs.field(
        default=_assets.SESSION_TTL, validator=attrs.validators.gt(0)
    )
    #: Seconds between sweeps for expired upload sessions.
    upload_sweep_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: Engine backend name passed to ``aioembed.engine`` (``None``: its default).
    backend: str | None = None
    #: ``"module:function"`` called once in every worker process (and the server
    #: process) before any job, e.g. to ``register_backend`` a custom backend.
    worker_init: str | None = None
    #: How long one video task may run in a worker before the worker is killed.
    task_timeout: float = 6 * 3600.0
    #: How long a synchronous embedding (``POST /embed``) may wait for a worker and run.
    sync_timeout: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Processes probing uploads at create, apart from ``POST /embed``'s, so a create
    #: never queues behind slow embeddings (nor they behind a slow probe).
    probe_workers: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    #: How long a create-time probe may wait for a probe worker and run.
    probe_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    #: Threads per video decoder; FFmpeg's default is one per CPU, and decoder memory
    #: grows with the thread count. ``0``: FFmpeg's choice.
    decoder_threads: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    #: Bytes one worker process may allocate (``RLIMIT_DATA``); past it the job fails
    #: with ``memory_limit_exceeded``. ``None``: no cap.
    worker_memory_limit: int | None = attrs.field(default=2 * 1024**3, validator=_positive_or_none)
    #: A worker process left with more resident bytes than this after a job is replaced
    #: (the job's answer is kept). ``None``: never for that reason.
    worker_max_rss: int | None = attrs.field(default=512 * 1024**2, validator=_positive_or_none)
    #: A worker process is replaced after this many jobs. ``None``: never.
    worker_max_jobs: int | None = attrs.field(default=None, validator=_positive_or_none)
    #: Largest image input in pixels (width x height), read from its header before
    #: it is decoded.
    max_image_pixels: int = attrs.field(default=40_000_000, validator=attrs.validators.gt(0))
    #: Probe uploaded files at create so broken/out-of-limit videos get a 400 at once.
    probe_on_create: bool = True
    #: Attempts (server restarts mid-task) before a task is failed instead of resumed.
    max_attempts: int = 5
    #: Seconds a client should wait between status polls (sent as ``x-poll-after``).
    poll_hint: float = 1.0
    idempotency_ttl: float = 24 * 3600.0
    #: Most progress writes per task per second that reach the store.
    progress_interval: float = 0.5
    #: Start worker processes at start-up instead of on first use.
    prestart_workers: bool = False
    #: Open connections at most; past it a new one is answered ``503`` and closed. The
    #: open-file limit is raised to fit when it can, else the cap is lowered (logged).
    max_connections: int = attrs.field(default=1024, validator=attrs.validators.gt(0))
    #: Open connections from one client address at most; past it ``429``.
    max_connections_per_ip: int = attrs.field(default=512, validator=attrs.validators.gt(0))
    #: Seconds from a request's first byte to the end of its headers.
    header_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: Seconds an idle keep-alive connection (or one that never sends) is kept. Longer
    #: than aiohttp clients' 15 s, so a client closes its idle connection first.
    idle_timeout: float = attrs.field(default=20.0, validator=attrs.validators.gt(0))
    #: Window (seconds) over which a request body must average ``min_body_rate``.
    body_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Bytes per second a request body must average over each ``body_timeout`` window
    #: while the server waits for it; slower is ``408 request_timeout``.
    min_body_rate: int = attrs.field(default=1024, validator=attrs.validators.ge(0))
    #: Seconds requests in flight (uploads) get to finish on SIGTERM before they are cut.
    shutdown_grace: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    #: Operator mode (``aioembed[scale]``): tasks, queue and rate limits in this
    #: ``postgresql://`` database, shared by replicas and ``aioembed worker`` processes;
    #: ``media`` then names the object store. ``None``: SQLite in ``data_dir``.
    database: str | None = attrs.field(
        default=None, repr=_redacted_dsn, validator=_check_database
    )
    #: Operator mode: task media in ``s3://bucket/prefix`` (credentials: AWS_* variables).
    media: str | None = attrs.field(default=None, validator=_check_media)
    #: The S3 endpoint (MinIO, another cloud); ``None``: the AWS SDK's rules.
    s3_endpoint: str | None = None
    #: Seconds a consumer's claim on a task lasts unless renewed (every third of it while
    #: the task runs); a consumer that died is noticed that long after (plus half of it,
    #: the reclaim sweep's period), and its task runs again.
    task_lease: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Run video task consumers in this process. Operator-mode replicas may leave
    #: every task to ``aioembed worker`` processes.
    consume_tasks: bool = True

    def __attrs_post_init__(self) -> None:
        if (self.database is None) != (self.media is None):
            raise ValueError("operator mode needs both a database and a media store")

    @property
    def operator_mode(self) -> bool:
        """Replicas over PostgreSQL and an object store (no local data-dir state for tasks)."""
        return self.database is not None

    @property
    def url_max_bytes(self) -> int:
        """The size limit of URL inputs: ``max_upload_bytes``, one limit for every input."""
        return self.max_upload_bytes
