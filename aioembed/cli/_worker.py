"""``aioembed worker``: engine processes that claim tasks from an operator-mode database.

Flags mirror ``aioembed serve``'s for the engine (``--workers``, ``--backend``,
``--worker-init``, ``--task-timeout``, URL fetch policy) plus the operator-mode
pair ``--database``/``--media`` (``--s3-endpoint``). Prints ``aioembed worker
ready`` once it claims; stops cleanly on SIGINT/SIGTERM (a task in flight is
left to its lease: another worker runs it again).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import ServerConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from ..server import operator_flags, worker_limit_flags

    p = argparse.ArgumentParser(
        prog="aioembed worker",
        description="Embed queued tasks of an operator-mode deployment (PostgreSQL + S3).",
    )
    operator_flags(p)
    p.add_argument("--workers", type=int, default=None, help="engine processes (default: CPUs)")
    p.add_argument("--backend", default=None, help="engine backend name (default: the engine's)")
    p.add_argument("--worker-init", default=None, metavar="MODULE:FUNC")
    p.add_argument("--task-timeout", type=float, default=None, help="seconds per video task")
    p.add_argument(
        "--allow-url-host",
        action="append",
        default=[],
        metavar="CIDR|IP|HOST",
        help="let video_url reach this private/loopback destination (repeatable)",
    )
    p.add_argument(
        "--task-lease",
        type=float,
        default=None,
        help="seconds a claim lasts unless renewed: a dead worker's task runs again "
        "about 1.5x this later (default 30)",
    )
    p.add_argument("--prestart-workers", action="store_true", help="start engines at start-up")
    worker_limit_flags(p)
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from ..server import ServerConfig, operator_options, worker_limit_options
    from ..server._redact import scrub_secret_url

    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    options = operator_options(args)
    database = options.get("database")
    assert database is None or isinstance(database, str)
    if not options:
        print("aioembed worker: error: --database and --media are required", file=sys.stderr)
        return 2
    for name in ("workers", "backend", "worker_init", "task_timeout", "task_lease"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    options["url_allow"] = tuple(args.allow_url_host)
    options["prestart_workers"] = args.prestart_workers
    options.update(worker_limit_options(args))
    try:
        config = ServerConfig(**options)  # type: ignore[arg-type]
    except (ValueError, TypeError) as e:
        print(f"aioembed worker: error: {scrub_secret_url(str(e), database)}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(config))
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # database or object store refusing us: one line, no password
        shown = scrub_secret_url(f"{type(e).__name__}: {e}", database)
        print(f"aioembed worker: error: {shown}", file=sys.stderr)
        return 1
    return 0


async def _run(config: ServerConfig) -> None:
    from ..server._worker_main import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(
        config,
        stop=stop,
        on_ready=lambda: print("aioembed worker ready", flush=True),
    )
