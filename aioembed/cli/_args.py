"""The ``aioembed`` argument parser: every value checked here, before any work starts.

Bad arguments exit 2 with one line (argparse's ``usage`` + ``error``), whatever
the mistake: an unknown output suffix, a clip length out of range, an embedding
option the model does not have, a flag of the other API. ``--api v2`` settings
go through the contract's own validator (the server's message), which also
resolves the model's defaults for the export's provenance (``args.v2_spec``).
Nothing is uploaded for a batch that would fail on its parameters.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from .._params import DEFAULT_CLIP_LENGTH, MAX_CLIP_LENGTH, MIN_CLIP_LENGTH, MODELS, SCOPES
from .._version import __version__
from ..client import DEFAULT_CONCURRENCY, DEFAULT_MODEL
from ..contract.v2 import (
    Dynamic,
    Fixed,
    MediaSource,
    ModelName,
    VideoInput,
    check_task_body,
    task_body,
)
from ..contract.v2._inputs import Segmentation
from ..errors import ParameterError
from ._shard import Shard
from ._embedded import SERVER_RULE
from ._export import check_format

__all__ = ["parse"]

DESCRIPTION = """\
aioembed: embed many videos with progress and export the vectors, inspect tasks,
run the local wire-compatible server, or see a demo. Run `aioembed COMMAND --help`
for a command's options."""

_MODELS_HELP = "; ".join(
    f"{m.name}: {m.dims}-d, options {', '.join(m.video_options)}" for m in MODELS.values()
)
V2_MODELS = tuple(m.value for m in ModelName)
_V2_HELP = (
    "With --api v2 (default marengo3.0): marengo3.0 (options visual, audio, transcription), "
    "marengo3.5 (visual, audio)"
)
#: Scopes of either API: v1 ``clip``/``video``, v2 ``clip``/``local``/``asset``.
_ALL_SCOPES = (*SCOPES, "local", "asset")


class _Parser(argparse.ArgumentParser):
    """Mistakes as one line (``aioembed embed: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} should be 1 or more")
    return value


def _clip_length(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not MIN_CLIP_LENGTH <= value <= MAX_CLIP_LENGTH:
        raise argparse.ArgumentTypeError(
            f"{text} s is outside {MIN_CLIP_LENGTH:g}-{MAX_CLIP_LENGTH:g} seconds"
        )
    return value


def _segmentation(text: str) -> Segmentation:
    strategy, _, seconds = text.partition(":")
    if strategy not in ("fixed", "dynamic") or not seconds.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} should be fixed:SECONDS (2-10) or dynamic:SECONDS (minimum, 2-5)"
        )
    return Fixed(int(seconds)) if strategy == "fixed" else Dynamic(int(seconds))


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} should be more than 0")
    return value


def _output(text: str) -> str:
    problem = check_format(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _api_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api", choices=["v1", "v2"], default="v1", help="the Embed API of the task (default v1)"
    )


def _server_help(p: argparse.ArgumentParser) -> None:
    p.epilog = SERVER_RULE


def _embed_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    e = sub.add_parser(
        "embed",
        help="embed many videos with progress and export the vectors",
        description="Embed videos (files, directories, globs, URLs), showing progress, and "
        "write the vectors to one file. A batch is resumable: rerun with --resume.",
    )
    _server_help(e)
    e.add_argument("inputs", nargs="+", metavar="PATH|GLOB|DIR|URL")
    e.add_argument(
        "--out", type=_output, help="results file: .jsonl, .parquet or .npz (written atomically)"
    )
    e.add_argument(
        "--api",
        choices=["v1", "v2"],
        default="v1",
        help="the Embed API (default v1); v2 takes --segmentation and --embedding-dimension",
    )
    e.add_argument(
        "--model",
        default=None,
        choices=list(dict.fromkeys([*MODELS, *V2_MODELS])),
        help=f"model (default {DEFAULT_MODEL}). {_MODELS_HELP}. {_V2_HELP}",
    )
    e.add_argument(
        "--concurrency",
        type=_positive_int,
        default=None,
        help=f"items in flight (default {DEFAULT_CONCURRENCY}, the SDK's)",
    )
    e.add_argument(
        "--clip-length",
        type=_clip_length,
        default=None,
        metavar="SECONDS",
        help=f"{MIN_CLIP_LENGTH:g}-{MAX_CLIP_LENGTH:g} (default {DEFAULT_CLIP_LENGTH:g})",
    )
    e.add_argument(
        "--scope",
        action="append",
        choices=list(_ALL_SCOPES),
        help="v1: clip and/or video (default clip); v2: clip and/or asset (default both)",
    )
    e.add_argument(
        "--option",
        action="append",
        help="embedding option, repeatable (default: all the model's). " + _MODELS_HELP,
    )
    e.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its journal"
    )
    e.add_argument(
        "--journal",
        help="journal path (default: OUT.journal.sqlite, or one in the cache named for the "
        "batch), or postgresql://HOST/DB#NAME: batch NAME shared by every process given it "
        "(each writes its own --out part; then `aioembed merge`); ?lease=SECONDS (default 30)",
    )
    e.add_argument(
        "--workers", type=_positive_int, default=None, help="embedded server's worker processes"
    )
    _v2_and_budget(e)
    e.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="embed only shard I of N (by a hash of each input; needs --out): run one per "
        "machine or process, then `aioembed merge` the parts",
    )


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _merge_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    m = sub.add_parser(
        "merge",
        help="join the parts of a sharded embed and list missing or failed inputs",
        description="Join the output parts of `aioembed embed --shard I/N` runs into one file; "
        "list the inputs that failed or are in no part (exit 1 if any).",
    )
    m.add_argument("parts", nargs="+", metavar="PART", help=".jsonl, .parquet or .npz parts")
    m.add_argument("--out", type=_output, required=True, help="the merged file")


def _v2_and_budget(e: argparse.ArgumentParser) -> None:
    e.add_argument(
        "--segmentation",
        type=_segmentation,
        metavar="fixed:S|dynamic:S",
        help="v2: fixed S-second segments (2-10) or shot boundaries at least S s apart "
        "(2-5); default the model's (dynamic)",
    )
    e.add_argument(
        "--embedding-dimension",
        type=_positive_int,
        metavar="N",
        help="v2, marengo3.5: vector length 1-512 (a prefix of the full vector)",
    )
    e.add_argument(
        "--requests-per-minute",
        type=_rate,
        metavar="N",
        help="pace the batch to at most N requests per minute (no 429s)",
    )
    e.add_argument(
        "--media-minutes-per-hour",
        type=_rate,
        metavar="M",
        help="pace the batch to at most M minutes of media submitted per hour",
    )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="aioembed",
        description=DESCRIPTION,
        epilog=textwrap.fill(SERVER_RULE, 80),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"aioembed {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "serve", help="run the local server (see `aioembed serve --help`)", add_help=False
    )
    sub.add_parser(
        "worker",
        help="embed tasks of an operator-mode server (see `aioembed worker --help`)",
        add_help=False,
    )
    _embed_parser(sub)
    _merge_parser(sub)
    s = sub.add_parser("status", help="show a task's status as JSON")
    _server_help(s)
    s.add_argument("task_id")
    _api_flag(s)
    ls = sub.add_parser("list", help="list tasks, newest first (tab-separated when piped)")
    _server_help(ls)
    ls.add_argument("--status", choices=["processing", "ready", "failed"])
    ls.add_argument(
        "--limit", type=_positive_int, default=50, help="at most this many (default 50)"
    )
    _api_flag(ls)
    r = sub.add_parser("retrieve", help="fetch a task's embeddings")
    _server_help(r)
    r.add_argument("task_id")
    r.add_argument("--option", action="append", help="embedding option, repeatable (default all)")
    r.add_argument(
        "--out", type=_output, help=".jsonl, .parquet or .npz; JSON to stdout without it"
    )
    _api_flag(r)
    d = sub.add_parser(
        "demo",
        help="embed generated sample videos and show their similarities",
        description="Always on the embedded local server, whatever the environment says.",
    )
    d.add_argument(
        "--dir", default=None, help="where the sample videos go (default: the aioembed cache)"
    )
    return p


def _check_v1(args: argparse.Namespace) -> str | None:
    """The complaint about a v1 batch's flags, if any."""
    args.model = args.model or DEFAULT_MODEL
    if args.model not in MODELS:
        return f"--model {args.model} is a v2 model: add --api v2"
    v2_only = {
        "--segmentation": args.segmentation,
        "--embedding-dimension": args.embedding_dimension,
    }
    for flag, value in v2_only.items():
        if value is not None:
            return f"{flag} needs --api v2"
    for scope in args.scope or ():
        if scope not in SCOPES:
            return f"--scope {scope} is v2's: use {' or '.join(SCOPES)}, or add --api v2"
    valid = MODELS[args.model].video_options
    for option in args.option or ():
        if option not in valid:
            use = " or ".join(valid)
            return f"--option {option!r} is not an option of {args.model}: use {use}"
    return None


def _check_v2(args: argparse.Namespace) -> str | None:
    """The complaint about a v2 batch's flags (the server's own rules), if any; sets
    ``args.v2_spec`` to the checked settings with the model's defaults resolved."""
    args.model = args.model or ModelName.MARENGO_3_0.value
    if args.model not in V2_MODELS:
        return f"--model {args.model} is not a v2 model: use {' or '.join(V2_MODELS)}"
    if args.clip_length is not None:
        return "--clip-length is v1's: with --api v2 use --segmentation fixed:SECONDS"
    settings = VideoInput(
        MediaSource.url("https://example.com/batch-settings.mp4"),
        segmentation=args.segmentation,
        embedding_option=args.option,
        embedding_scope=args.scope,
    )
    try:
        body = task_body(args.model, settings, embedding_dimension=args.embedding_dimension)
        args.v2_spec = check_task_body(body)
    except ParameterError as e:
        return e.message
    return None


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parsed and checked arguments; exits 2 with one line on any mistake."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "embed":
        problem = _check_v2(args) if args.api == "v2" else _check_v1(args)
        if problem is not None:
            parser.exit(2, f"aioembed embed: error: {problem}\n")
    return args
