"""Request forms: multipart streamed to disk, field rules, file names made safe.

A file part is written to a temporary file in the data directory while it is
received, in bounded chunks (memory stays flat whatever the size), hashed with
SHA-256 on the way and capped at the configured size (``413
video_filesize_too_large`` as soon as the cap is passed). Writes and hashing run
in a thread, not on the event loop. Whatever happens (a bad field, the client
hanging up, a crash of the handler), :meth:`Form.cleanup` removes the file unless
the media store adopted (moved) it first.

Fields are checked as they arrive: an unknown name is ``400 parameter_unknown``
at once, and a ``before_file`` hook runs the form-only rules before the first
byte of a file is stored (the official SDK sends every text field before the
file, so with it nothing is stored for a request that will be refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import unicodedata
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

import attrs
from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import parse_content_disposition

from .._params import invalid
from ..contract._spec import FormSpec
from ..errors import ErrorCode, ParameterError, PayloadTooLargeError

__all__ = [
    "FORM_SLACK",
    "BeforeFile",
    "Form",
    "UploadedFile",
    "read_form",
    "safe_filename",
    "too_large",
]

_CHUNK = 256 * 1024
_FLUSH = 1024 * 1024
_TEXT_CHUNK = 8 * 1024
#: Form overhead allowed on top of the file cap when judging Content-Length up front.
FORM_SLACK = 1024 * 1024
#: More parts than any valid form has: refuse rather than parse on.
MAX_PARTS = 100


def too_large(limit: int, what: str = "file") -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The {what} is larger than the server's limit of {limit} bytes.",
        code=ErrorCode.VIDEO_FILESIZE_TOO_LARGE,
    )


def safe_filename(name: str | None) -> str | None:
    """The last path component of a client-given file name, without control
    characters, at most 255 characters; ``None`` if nothing usable remains.

    The result is only ever shown back as ``input_filename``: files are stored
    under the task id, so a name like ``../../x`` cannot reach the file system.
    """
    if not name:
        return None
    # aiohttp clients percent-encode file names (HTML5 forms escape only '"' and
    # newlines that way): decode, then judge the real name.
    name = unquote(name)
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return None
    return name[:255]


@attrs.define
class UploadedFile:
    """A received file part, on disk at ``path`` until adopted (moved away) or cleaned up."""

    field: str
    path: Path
    size: int
    sha256: str
    filename: str | None
    content_type: str | None


@attrs.define
class Form:
    """Parsed fields (every value as text, in arrival order) and received files."""

    fields: dict[str, list[str]] = attrs.Factory(dict)
    files: dict[str, UploadedFile] = attrs.Factory(dict)
    #: File fields whose body was read and dropped (``before_file`` said so).
    discarded: set[str] = attrs.Factory(set)

    def get(self, name: str) -> str | None:
        """The single value of ``name``; a repeat is ``400 parameter_invalid``."""
        values = self.fields.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise invalid(name, f"{name} should be given once.")
        return values[0]

    def values(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def has(self, name: str) -> bool:
        return name in self.fields or name in self.files or name in self.discarded

    async def cleanup(self) -> None:
        # A file the media store adopted is gone already: unlinking it is a no-op.
        paths = [f.path for f in self.files.values()]
        if paths:
            await asyncio.get_running_loop().run_in_executor(None, _unlink_all, paths)


def _unlink_all(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


#: Called with the form so far when a file part starts; returns False to drop its body.
BeforeFile = Callable[[str, Form], Awaitable[bool]]


def _content_disposition(part: BodyPartReader) -> tuple[str | None, str | None]:
    header = part.headers.get("Content-Disposition")
    # aiohttp reports malformed headers as warnings; this block has no await,
    # so swapping the warning filters here cannot leak into other tasks.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kind, params = parse_content_disposition(header)
    if caught or kind is None or kind.lower() != "form-data":
        raise invalid("multipart", "Each multipart part needs a valid Content-Disposition header.")
    return params.get("name"), params.get("filename")


async def read_form(
    request: web.Request,
    spec: FormSpec,
    *,
    tmp_dir: Path,
    max_file_bytes: int,
    max_field_bytes: int,
    before_file: BeforeFile | None = None,
) -> Form:
    """Read a multipart (or urlencoded, or empty) form under ``spec``.

    Raises ``ParameterError`` (``parameter_unknown`` / ``parameter_invalid``),
    ``PayloadTooLargeError``; on any exception every file already stored is
    removed before it propagates. The caller must ``await form.cleanup()``.
    """
    form = Form()
    length = request.content_length
    if length is not None and length > max_file_bytes + FORM_SLACK:
        raise too_large(max_file_bytes, "request body")
    ctype = request.content_type
    try:
        if ctype.startswith("multipart/"):
            await _read_multipart(
                request, spec, form, tmp_dir, max_file_bytes, max_field_bytes, before_file
            )
        elif ctype == "application/x-www-form-urlencoded":
            try:
                post = await request.post()
            except (ValueError, HttpProcessingError):
                raise invalid("form", "The request body is not a valid urlencoded form.") from None
            if len(post) > MAX_PARTS:
                raise invalid("form", f"A form should have at most {MAX_PARTS} parts.")
            for name, value in post.items():
                spec.check_name(name)
                if not isinstance(value, str):  # pragma: no cover - urlencoded has no files
                    raise invalid(name, f"{name} should be text.")
                if name in spec.files:
                    raise invalid(name, f"{name} should be sent as a multipart file part.")
                form.fields.setdefault(name, []).append(value)
        elif ctype == "application/octet-stream" and not request.body_exists:
            pass  # no body at all: an empty form
        else:
            raise invalid(
                "Content-Type",
                "The request body should be multipart/form-data "
                f"(or application/x-www-form-urlencoded), not {ctype[:100]!r}.",
            )
        for name, values in form.fields.items():
            if len(values) > 1 and name not in spec.repeated:
                raise invalid(name, f"{name} should be given once.")
    except BaseException:
        await asyncio.shield(form.cleanup())
        raise
    return form


async def _read_multipart(
    request: web.Request,
    spec: FormSpec,
    form: Form,
    tmp_dir: Path,
    max_file_bytes: int,
    max_field_bytes: int,
    before_file: BeforeFile | None,
) -> None:
    try:
        reader = await request.multipart()
        parts = 0
        while True:
            part = await reader.next()
            if part is None:
                break
            parts += 1
            if parts > MAX_PARTS:
                raise invalid("multipart", f"A form should have at most {MAX_PARTS} parts.")
            if isinstance(part, MultipartReader):
                raise invalid("multipart", "Nested multipart parts are not accepted.")
            name, filename = _content_disposition(part)
            if not name:
                raise invalid("multipart", "Each multipart part needs a name.")
            spec.check_name(name)
            if name in spec.files:
                if name in form.files or name in form.discarded:
                    raise invalid(name, f"{name} should be given once.")
                keep = True if before_file is None else await before_file(name, form)
                if keep:
                    form.files[name] = await _store_part(
                        part, name, filename, tmp_dir, max_file_bytes
                    )
                else:
                    await _drain(part, max_file_bytes)
                    form.discarded.add(name)
            else:
                form.fields.setdefault(name, []).append(
                    await _read_text(part, name, max_field_bytes)
                )
    except (ParameterError, PayloadTooLargeError):
        raise
    except (ConnectionError, asyncio.CancelledError):
        raise
    except (ValueError, AssertionError, LookupError, HttpProcessingError, web.HTTPException) as e:
        # aiohttp's multipart reader signals bad framing with these (InvalidHeader for a
        # control character in a part's headers, ContentLengthError for a cut body).
        raise invalid(
            "multipart", f"The request body is not valid multipart/form-data ({_short(e)})."
        ) from None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


async def _read_text(part: BodyPartReader, name: str, limit: int) -> str:
    buf = bytearray()
    # Small reads: the reader looks one chunk ahead for the boundary, and that
    # lookahead should not pull much of a following file before it is judged.
    while chunk := await part.read_chunk(_TEXT_CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise invalid(name, f"{name} should be at most {limit} bytes long.")
    try:
        return buf.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid(name, f"{name} should be UTF-8 text.") from None


async def _drain(part: BodyPartReader, limit: int) -> None:
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)


class _Sink:
    """A temp file plus its running hash; all blocking calls run in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def finish(self) -> None:
        os.fsync(self.fd)
        fd, self.fd = self.fd, -1
        os.close(fd)

    def abort(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def _store_part(
    part: BodyPartReader, name: str, filename: str | None, tmp_dir: Path, limit: int
) -> UploadedFile:
    loop = asyncio.get_running_loop()
    path = tmp_dir / f"{secrets.token_hex(12)}.part"
    sink = await loop.run_in_executor(None, _Sink, path)
    size = 0
    try:
        buf = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            buf += chunk
            if len(buf) >= _FLUSH:
                data, buf = bytes(buf), bytearray()
                await loop.run_in_executor(None, sink.write, data)
        if buf:
            await loop.run_in_executor(None, sink.write, bytes(buf))
        await loop.run_in_executor(None, sink.finish)
    except BaseException:
        await asyncio.shield(loop.run_in_executor(None, sink.abort))
        raise
    return UploadedFile(
        field=name,
        path=path,
        size=size,
        sha256=sink.hash.hexdigest(),
        filename=safe_filename(filename),
        content_type=part.headers.get("Content-Type"),
    )
