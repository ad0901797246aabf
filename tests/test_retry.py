"""Fast tier: the one transient-error rule and the one backoff, without a server."""

from __future__ import annotations

import pytest

from aioembed import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    CrossOriginRedirectError,
    JournalError,
    NotFoundError,
    ParameterError,
    PayloadTooLargeError,
    RateLimitError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TaskError,
    TaskFailedError,
    TransportError,
    WaitTimeoutError,
)
from aioembed._retry import TRANSIENT_TASK_ERRORS, Backoff, is_transient


def _failed(code: str) -> TaskFailedError:
    return TaskFailedError("t", TaskError(code, "why"))


@pytest.mark.parametrize(
    "exc",
    [
        TransportError("reset"),
        RequestTimeoutError("slow"),
        ServerError("boom", code="internal_error", status=503),
        RateLimitError("wait", code="too_many_requests", retry_after=1.0),
        *(_failed(code) for code in sorted(TRANSIENT_TASK_ERRORS)),
    ],
    ids=repr,
)
def test_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        BadRequestError("no", code="parameter_invalid"),
        ParameterError("no"),
        AuthenticationError("key", code="api_key_invalid"),
        NotFoundError("gone", code="resource_not_exist"),
        PayloadTooLargeError("big", code="video_filesize_too_large"),
        _failed("video_file_broken"),
        TaskFailedError("t", None),
        WaitTimeoutError("t", 1.0),
        ResponseValidationError("bad shape"),
        ResponseTooLargeError("huge", limit=10),
        CrossOriginRedirectError("elsewhere", source="a", target="b", status=307),
        JournalError("locked", path="j"),
        ClientClosedError("closed"),
        ValueError("misuse"),
    ],
    ids=repr,
)
def test_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    b = Backoff(0.5, 4.0)
    assert [b.base(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.base(10_000) == 4.0  # no overflow however long an outage lasts
    for n in range(1, 8):
        for _ in range(50):
            assert 0 <= b.delay(n) <= b.base(n)
    poll = Backoff(1.0, 10.0, factor=1.5, jitter=0.2)
    for _ in range(50):
        assert 0.8 * 2.25 <= poll.delay(3) <= 2.25


def test_backoff_honours_retry_after_with_a_little_jitter() -> None:
    b = Backoff(0.25, 20.0)
    for _ in range(50):
        assert 3.0 <= b.delay(1, retry_after=3.0) <= 3.25
        assert 20.0 <= b.delay(1, retry_after=1e9) <= 20.25  # capped at the maximum


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(1, 2, jitter=1.5)


def test_retry_policy_uses_the_shared_backoff() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=0.3)
    for _ in range(50):
        assert 0 <= policy.backoff(5) <= 0.3
        assert 0.3 <= policy.backoff(1, retry_after=2.0) <= 0.4  # capped at max_delay
