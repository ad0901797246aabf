"""Every error aioembed raises, client and server side alike.

The tree::

    AioEmbedError
    ├── APIStatusError              the server answered with an error body
    │   ├── BadRequestError         400
    │   │   └── ParameterError      400, raised locally before any byte is sent
    │   ├── AuthenticationError     401
    │   ├── NotFoundError           404
    │   ├── PayloadTooLargeError    413
    │   ├── RateLimitError          429, carries ``retry_after``
    │   └── ServerError             5xx
    ├── TransportError              the request did not get an answer
    │   └── RequestTimeoutError     a configured timeout fired
    ├── ResponseValidationError     a 2xx answer the SDK cannot use (bad shape, bad values)
    │   └── ResponseTooLargeError   a body past the client's cap
    ├── CrossOriginRedirectError    the API redirected to another origin (not followed)
    ├── TaskFailedError             a task ended ``failed``
    ├── WaitTimeoutError            a wait's deadline passed first
    ├── ClientClosedError           the client was used after ``aclose()``
    ├── JournalError                an ``embed_many`` journal path that cannot be used
    └── MediaError                  (``aioembed.engine``) a file the engine cannot use

Every wire code is an :class:`ErrorCode` (a ``StrEnum``, so it compares equal to
and serialises as its text); ``APIStatusError.code`` holds the enum member for a
known code and the server's text for one this version does not know.

``ParameterError`` is also a ``ValueError`` and ``ClientClosedError`` a
``RuntimeError``, so callers that think of them as misuse can catch builtins.
The server raises the same ``APIStatusError`` subclasses and renders them as the
contract's JSON body, so both ends agree on codes by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._ratelimits import RateLimits

__all__ = [
    "APIStatusError",
    "AioEmbedError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "CrossOriginRedirectError",
    "ErrorCode",
    "JournalError",
    "NotFoundError",
    "ParameterError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "ServerError",
    "TaskFailedError",
    "TransportError",
    "WaitTimeoutError",
    "as_code",
    "error_for_status",
]


class ErrorCode(StrEnum):
    """Every ``code`` an error body (or a failed task's ``error``) carries, v1 and v2."""

    PARAMETER_INVALID = "parameter_invalid"
    PARAMETER_NOT_PROVIDED = "parameter_not_provided"
    PARAMETER_UNKNOWN = "parameter_unknown"
    VIDEO_FILE_BROKEN = "video_file_broken"
    VIDEO_DURATION_TOO_SHORT = "video_duration_too_short"
    VIDEO_DURATION_TOO_LONG = "video_duration_too_long"
    VIDEO_RESOLUTION_TOO_LOW = "video_resolution_too_low"
    VIDEO_RESOLUTION_TOO_HIGH = "video_resolution_too_high"
    VIDEO_FILESIZE_TOO_LARGE = "video_filesize_too_large"
    API_KEY_INVALID = "api_key_invalid"
    RESOURCE_NOT_EXIST = "resource_not_exist"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_MANY_REQUESTS = "too_many_requests"
    INTERNAL_ERROR = "internal_error"
    #: [ext] a failed task's reasons that are the server's, not the input's.
    WORKER_CRASHED = "worker_crashed"
    PROCESSING_TIMEOUT = "processing_timeout"
    #: [ext] the input needed more memory than one worker may use (``--worker-memory-limit``).
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    #: [ext] connection limits: a request body that stopped arriving (408), a server at
    #: its open-connection cap (503).
    REQUEST_TIMEOUT = "request_timeout"
    SERVER_BUSY = "server_busy"
    #: v2 (Embed API v2, assets, multipart uploads).
    CONTENT_TOO_LARGE = "content_too_large"
    UPLOAD_SESSION_EXPIRED = "upload_session_expired"
    PRESIGNED_URL_INVALID = "presigned_url_invalid"
    PRESIGNED_URL_EXPIRED = "presigned_url_expired"
    ASSET_IN_USE = "asset_in_use"


def as_code(code: str) -> ErrorCode | str:
    """The :class:`ErrorCode` member for a known code; unknown text is kept as given."""
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class AioEmbedError(Exception):
    """Root of every exception raised by aioembed."""


class APIStatusError(AioEmbedError):
    """The server answered with a non-2xx status and (usually) a contract error body."""

    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | str,
        status: int | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: ErrorCode | str = as_code(code)
        if status is not None:
            self.status = status
        self.request_id = request_id
        self.headers: Mapping[str, str] = dict(headers or {})
        #: Embed API v2's ``error.details`` (``{"parameter": "video.start_sec"}``), if any.
        self.details: Mapping[str, Any] = dict(details or {})

    @property
    def rate_limits(self) -> RateLimits | None:
        """The ``X-Ratelimit-*`` headers of this answer, typed (``None`` if there were none)."""
        from ._ratelimits import RateLimits

        return RateLimits.from_headers(self.headers)

    @property
    def parameter(self) -> str | None:
        """The JSON path at fault (v2's ``details.parameter``), when the server named one."""
        value = self.details.get("parameter")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.request_id is not None:
            body["request_id"] = self.request_id
        return body


class BadRequestError(APIStatusError):
    status = 400


class ParameterError(BadRequestError, ValueError):
    """A parameter breaks a contract rule; ``code`` is what the server would answer."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | str = ErrorCode.PARAMETER_INVALID,
        parameter: str | None = None,
    ) -> None:
        details = {"parameter": parameter} if parameter is not None else None
        super().__init__(message, code=code, status=400, details=details)


class AuthenticationError(APIStatusError):
    status = 401


class NotFoundError(APIStatusError):
    status = 404


class PayloadTooLargeError(APIStatusError):
    status = 413


class RateLimitError(APIStatusError):
    status = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    status = 500


class TransportError(AioEmbedError):
    """Connection refused or reset, DNS failure, malformed response: no usable answer."""


class RequestTimeoutError(TransportError, TimeoutError):
    """A configured :class:`~aioembed.Timeouts` limit fired."""


class ResponseValidationError(AioEmbedError):
    """The server answered 2xx with a body the SDK cannot use: not JSON, the wrong shape,
    or values of the wrong type. ``request_id`` (from the ``x-request-id`` header) lets the
    operator find the request; ``url`` and ``status`` say which answer it was."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status
        self.request_id = request_id


class ResponseTooLargeError(ResponseValidationError):
    """A response body went past ``limit`` bytes (``Limits.max_response_bytes`` for answers,
    a small fixed cap for error bodies); reading stopped there."""

    def __init__(self, message: str, *, limit: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.limit = limit


class CrossOriginRedirectError(AioEmbedError):
    """The API answered with a redirect to another origin (``target``). It is not followed:
    the API key, an upload or an ``Idempotency-Key`` must never reach another host. Point
    ``base_url`` at the final address instead."""

    def __init__(self, message: str, *, source: str, target: str, status: int) -> None:
        super().__init__(message)
        self.source = source
        self.target = target
        self.status = status


class JournalError(AioEmbedError):
    """The ``embed_many`` journal at ``path`` cannot be used: it is not an aioembed journal
    (and was left untouched), it is corrupt, or it is locked by another run. The message
    says what to do."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class TaskFailedError(AioEmbedError):
    """The task ended ``failed``; ``error`` is the server's reason when it gave one."""

    def __init__(self, task_id: str, error: Any = None) -> None:
        reason = f": {error.code}: {error.message}" if error is not None else ""
        super().__init__(f"task {task_id} failed{reason}")
        self.task_id = task_id
        self.error = error


class WaitTimeoutError(AioEmbedError, TimeoutError):
    """The task was still processing when the wait's deadline passed (the task goes on)."""

    def __init__(self, task_id: str, timeout: float) -> None:
        super().__init__(f"task {task_id} not done after {timeout:g} s")
        self.task_id = task_id
        self.timeout = timeout


class ClientClosedError(AioEmbedError, RuntimeError):
    """The client (or its session) was used after being closed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    code: ErrorCode | str,
    message: str,
    *,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    details: Mapping[str, Any] | None = None,
) -> APIStatusError:
    """Build the exception matching an HTTP status and contract code."""
    if status == 429:
        return RateLimitError(
            message,
            code=code,
            status=status,
            request_id=request_id,
            headers=headers,
            retry_after=retry_after,
            details=details,
        )
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIStatusError)
    return cls(
        message, code=code, status=status, request_id=request_id, headers=headers, details=details
    )
