"""The local, wire-compatible embed server (``aioembed serve``).

Serves the TwelveLabs Embed API v1 contract under ``/v1.3`` with
:mod:`aioembed.engine` doing the work in worker processes and SQLite keeping
every accepted task durable::

    from aioembed.server import ServerConfig, create_app
    app = create_app(ServerConfig(data_dir="data", api_keys=("k",), workers=2))

or from a shell: ``python -m aioembed.server --port 8000 --api-key-file key.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from .._extras import extra_missing
from ..contract import v1

try:
    from ._app import ServerRunner, create_app
except ImportError as e:  # NumPy or PyAV missing: name the extra to install
    raise extra_missing("aioembed.server", "server", e) from None
from ._accesslog import RedactingAccessLogger
from ._config import (
    MediaLimits,
    RateLimit,
    ServerConfig,
    parse_media_rate_limit,
    parse_rate_limit,
)
from ._keyfiles import generated_key, read_key_files
from ._keys import METRICS
from ._metrics import RequestCounter
from ._redact import scrub_secret_url
from ._store import SqliteStore, Store

__all__ = [
    "METRICS",
    "MediaLimits",
    "RateLimit",
    "RequestCounter",
    "ServerConfig",
    "ServerRunner",
    "SqliteStore",
    "Store",
    "create_app",
    "main",
    "operator_flags",
    "operator_options",
    "worker_limit_flags",
    "worker_limit_options",
    "serve",
]

log = logging.getLogger("aioembed.server")


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{v1.PREFIX}"


async def serve(
    config: ServerConfig,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    access_log: bool = False,
) -> None:
    """Run the server until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is None).

    ``on_ready`` gets the base URL (with the bound port when ``config.port`` is 0).
    Start-up errors (unusable data directory, port in use) propagate.
    """
    app = create_app(config)
    kwargs: dict[str, Any] = {"access_log_class": RedactingAccessLogger}
    if not access_log:
        kwargs["access_log"] = None
    runner = ServerRunner(app, **kwargs)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        addr = runner.addresses[0]
        url = base_url(config.host, int(addr[1]))
        if on_ready is not None:
            on_ready(url)
        loop = asyncio.get_running_loop()
        if stop is None:
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 2G or 500M") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size should be positive")
    return value


def _size_or_off(text: str) -> int | None:
    return None if text.strip().lower() in ("off", "none", "0") else _size(text)


def _count_or_off(text: str) -> int | None:
    if text.strip().lower() in ("off", "none", "0"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or off") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} should be 1 or more")
    return value


def _rate(text: str) -> RateLimit | None:
    try:
        return parse_rate_limit(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _media_rate(text: str) -> RateLimit | None:
    try:
        return parse_media_rate_limit(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aioembed serve",
        description="Run the local embed server (TwelveLabs Embed API v1 under /v1.3).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    p.add_argument("--data-dir", default="./aioembed-data", help="where tasks and vectors live")
    p.add_argument(
        "--workers", type=int, default=None, help="video worker processes (default: CPUs)"
    )
    p.add_argument(
        "--sync-workers",
        type=int,
        default=1,
        help="processes for POST /embed (default 1; probes have --probe-workers)",
    )
    p.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="accepted key, repeatable; visible to local users in `ps`, so prefer "
        "--api-key-file or $AIOEMBED_API_KEYS (comma-separated) / $AIOEMBED_API_KEY. "
        "With none of these a key is generated once and kept in DATA_DIR/api.key (0600)",
    )
    p.add_argument(
        "--api-key-file",
        action="append",
        default=[],
        metavar="PATH",
        help="file of accepted keys, one per line (repeatable)",
    )
    p.add_argument(
        "--admin-key",
        action="append",
        default=None,
        help="operator key, repeatable: GET /v1.3/metrics shows it the whole server "
        "(default: $AIOEMBED_ADMIN_KEYS, comma-separated; else none)",
    )
    p.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        help="per-key limit such as 100/min, 5/s or 300/60 (default: off)",
    )
    p.add_argument(
        "--allow-url-host",
        action="append",
        default=[],
        metavar="CIDR|IP|HOST",
        help="let video_url/image_url/audio_url reach this private/loopback destination "
        "(repeatable; default: none)",
    )
    p.add_argument(
        "--max-upload-bytes",
        type=_size,
        default=None,
        help="size limit of every input: uploads and URL downloads (default 2G)",
    )
    p.add_argument("--url-fetch-timeout", type=float, default=None, help="seconds (default 300)")
    p.add_argument("--task-timeout", type=float, default=None, help="seconds per video task")
    p.add_argument("--backend", default=None, help="engine backend name (default: the engine's)")
    p.add_argument(
        "--worker-init",
        default=None,
        metavar="MODULE:FUNC",
        help="called in every worker before any job (e.g. to register a backend)",
    )
    p.add_argument(
        "--no-probe-on-create",
        action="store_true",
        help="check videos in the task (ends failed) instead of at create (400)",
    )
    p.add_argument("--prestart-workers", action="store_true", help="start workers at start-up")
    operator_flags(p)
    _limit_flags(p)
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return p


#: Limits without a flag of their own above: flag -> (ServerConfig field, type, help).
_LIMIT_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "--media-rate-limit": (
        "media_rate_limit",
        _media_rate,
        "per-key media budget in minutes of audio/video per window, such as 600/h "
        "(X-Ratelimit-Duration-* headers count seconds; default: off)",
    ),
    "--max-connections": ("max_connections", int, "open connections at most (default 1024)"),
    "--max-connections-per-ip": (
        "max_connections_per_ip",
        int,
        "open connections from one client address at most (default 512)",
    ),
    "--header-timeout": (
        "header_timeout",
        float,
        "seconds from a request's first byte to the end of its headers (default 10)",
    ),
    "--idle-timeout": ("idle_timeout", float, "seconds an idle connection is kept (default 20)"),
    "--body-timeout": (
        "body_timeout",
        float,
        "window in seconds over which a body must average --min-body-rate (default 30)",
    ),
    "--min-body-rate": (
        "min_body_rate",
        int,
        "bytes/s a request body must average; slower is 408 (default 1024)",
    ),
    "--url-fetch-per-key": (
        "url_fetch_per_key",
        int,
        "URL downloads in flight at most for one API key (default 4)",
    ),
    "--url-fetch-concurrency": (
        "url_fetch_concurrency",
        int,
        "URL downloads in flight at most, server-wide (default 32)",
    ),
    "--url-min-rate": (
        "url_min_rate",
        int,
        "bytes/s a URL download must average over each 10 s window; 0: off (default 8192)",
    ),
    "--shutdown-grace": (
        "shutdown_grace",
        float,
        "seconds in-flight requests get to finish on SIGTERM (default 10)",
    ),
    "--sync-timeout": (
        "sync_timeout",
        float,
        "seconds a POST /embed job may wait for a worker and run: 503 if none was free, "
        "504 if it ran too long (default 120)",
    ),
    "--probe-workers": (
        "probe_workers",
        int,
        "processes probing uploads at create, apart from POST /embed's (default 1)",
    ),
    "--probe-timeout": (
        "probe_timeout",
        float,
        "seconds a create-time probe may wait for a probe worker and run (default 60)",
    ),
    "--decoder-threads": (
        "decoder_threads",
        int,
        "threads per video decoder; 0: FFmpeg's choice, one per CPU (default 2)",
    ),
    "--worker-memory-limit": (
        "worker_memory_limit",
        _size_or_off,
        "memory one worker process may allocate, or off; past it the input fails with "
        "memory_limit_exceeded (default 2G)",
    ),
    "--worker-max-rss": (
        "worker_max_rss",
        _size_or_off,
        "replace a worker process left above this resident memory after a job, or off "
        "(default 512M)",
    ),
    "--worker-max-jobs": (
        "worker_max_jobs",
        _count_or_off,
        "replace a worker process after this many jobs, or off (default off)",
    ),
    "--max-image-pixels": (
        "max_image_pixels",
        int,
        "largest image input in pixels, read from its header (default 40000000)",
    ),
    "--asset-direct-max-bytes": (
        "asset_direct_max_bytes",
        _size,
        "largest direct asset upload (POST /assets, method=direct); 413 past it (default 200M)",
    ),
    "--asset-multipart-max-bytes": (
        "asset_multipart_max_bytes",
        _size,
        "largest total_size of a multipart upload session; 413 past it (default 10G)",
    ),
    "--upload-chunk-size": (
        "upload_chunk_size",
        _size,
        "chunk size of multipart upload sessions, grown to keep --upload-max-chunks "
        "(default 5M)",
    ),
    "--upload-max-chunks": (
        "upload_max_chunks",
        int,
        "most chunks in one multipart upload session (default 10000)",
    ),
    "--upload-url-ttl": (
        "upload_url_ttl",
        float,
        "seconds a presigned part URL stays valid (default 3600)",
    ),
    "--upload-session-ttl": (
        "upload_session_ttl",
        float,
        "seconds a multipart upload session may take before it expires (default 86400)",
    ),
    "--upload-sweep-interval": (
        "upload_sweep_interval",
        float,
        "seconds between sweeps that drop expired upload sessions and their parts (default 60)",
    ),
}


def operator_flags(p: argparse.ArgumentParser) -> None:
    """``--database``, ``--media``, ``--s3-endpoint``: operator mode (``serve`` and ``worker``)."""
    p.add_argument(
        "--database",
        default=None,
        metavar="postgresql://USER@HOST/DB",
        help="operator mode: tasks, queue and rate limits in PostgreSQL (default: "
        "$AIOEMBED_DATABASE_URL). Keep the password out of argv: PGPASSWORD or ~/.pgpass",
    )
    p.add_argument(
        "--media",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="operator mode: task media in an S3-compatible store (credentials: AWS_* "
        "variables; default: $AIOEMBED_MEDIA_URL)",
    )
    p.add_argument(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="S3 endpoint (MinIO, ...); default: $AWS_ENDPOINT_URL or AWS itself",
    )


def operator_options(args: argparse.Namespace) -> dict[str, object]:
    """ServerConfig fields from :func:`operator_flags` (and their environment variables)."""
    database = args.database or os.environ.get("AIOEMBED_DATABASE_URL") or None
    media = args.media or os.environ.get("AIOEMBED_MEDIA_URL") or None
    if database is None and media is None:
        return {}
    return {"database": database, "media": media, "s3_endpoint": args.s3_endpoint}


def _limit_flags(p: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    # A flag not given is absent (not None): some limits take "off", which is None.
    for flag, (_, kind, text) in _LIMIT_FLAGS.items():
        if only is None or flag in only:
            p.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)


def _limit_options(args: argparse.Namespace) -> dict[str, object]:
    return {field: getattr(args, field) for field, _, _ in _LIMIT_FLAGS.values() if field in args}


#: The limits an engine host applies (``aioembed worker`` takes these flags too).
WORKER_LIMIT_FLAGS = (
    "--media-rate-limit",  # a URL input's duration is charged by the worker that learns it
    "--decoder-threads",
    "--worker-memory-limit",
    "--worker-max-rss",
    "--worker-max-jobs",
    "--max-image-pixels",
)


def worker_limit_flags(p: argparse.ArgumentParser) -> None:
    """The engine hosts' limit flags (:data:`WORKER_LIMIT_FLAGS`), as ``serve`` has them."""
    _limit_flags(p, WORKER_LIMIT_FLAGS)


def worker_limit_options(args: argparse.Namespace) -> dict[str, object]:
    """ServerConfig fields from :func:`worker_limit_flags`, for the flags given."""
    return _limit_options(args)


def _keys_from_env(
    many_var: str = "AIOEMBED_API_KEYS", one_var: str = "AIOEMBED_API_KEY"
) -> list[str]:
    many = os.environ.get(many_var, "")
    keys = [k.strip() for k in many.split(",") if k.strip()]
    one = os.environ.get(one_var, "").strip()
    if one:
        keys.append(one)
    return keys


def _api_keys(args: argparse.Namespace, *, operator: bool) -> list[str]:
    """The accepted keys: flags, key files, the environment, else one generated in the
    data directory (not in operator mode: every replica must accept the same keys)."""
    keys = [*(args.api_key or []), *read_key_files(args.api_key_file)] or _keys_from_env()
    if keys:
        return keys
    if operator:
        raise ValueError(
            "operator mode needs the keys given (--api-key-file or $AIOEMBED_API_KEYS), "
            "the same on every replica"
        )
    key, path, created = generated_key(args.data_dir)
    print(f"aioembed api key: {'generated in' if created else 'from'} {path}", flush=True)
    return [key]


def main(argv: Sequence[str] | None = None) -> int:
    """``aioembed serve``: parse flags, print ``aioembed serving on URL`` once bound, serve
    until SIGINT/SIGTERM. Returns the process exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    operator = operator_options(args)
    try:
        keys = _api_keys(args, operator=bool(operator))
    except ValueError as e:
        print(f"aioembed serve: error: {e}", file=sys.stderr)
        return 2
    options: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "sync_workers": args.sync_workers,
        "api_keys": tuple(dict.fromkeys(keys)),
        "admin_keys": tuple(
            dict.fromkeys(
                args.admin_key or _keys_from_env("AIOEMBED_ADMIN_KEYS", "AIOEMBED_ADMIN_KEY")
            )
        ),
        "rate_limit": args.rate_limit,
        "url_allow": tuple(args.allow_url_host),
        "backend": args.backend,
        "worker_init": args.worker_init,
        "probe_on_create": not args.no_probe_on_create,
        "prestart_workers": args.prestart_workers,
    }
    options.update(operator)
    if operator:  # replicas leave video tasks to `aioembed worker` unless given workers
        options["consume_tasks"] = args.workers is not None
    if args.workers is not None:
        options["workers"] = args.workers
    if args.max_upload_bytes is not None:
        options["max_upload_bytes"] = args.max_upload_bytes
    if args.url_fetch_timeout is not None:
        options["url_fetch_timeout"] = args.url_fetch_timeout
    if args.task_timeout is not None:
        options["task_timeout"] = args.task_timeout
    options.update(_limit_options(args))
    config_database = operator.get("database")
    assert config_database is None or isinstance(config_database, str)
    try:
        config = ServerConfig(**options)  # type: ignore[arg-type]
    except (ValueError, TypeError) as e:
        print(f"aioembed serve: error: {scrub_secret_url(str(e), config_database)}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"aioembed serving on {url}", flush=True)

    try:
        asyncio.run(serve(config, on_ready=ready, access_log=args.access_log))
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, OSError) as e:
        print(f"aioembed serve: error: {scrub_secret_url(str(e), config.database)}", file=sys.stderr)
        return 1
    except Exception as e:  # a database refusing us (asyncpg's own errors), an S3 error...
        if not config.operator_mode:
            raise
        shown = scrub_secret_url(f"{type(e).__name__}: {e}", config.database)
        print(f"aioembed serve: error: {shown}", file=sys.stderr)
        return 1
    return 0
