"""Secrets out of what the server stores, shows and logs.

A ``video_url`` may carry credentials: ``user:pass@`` or a signed query
(``X-Amz-Signature=``, ``sig=``, ``token=``...). The server fetches with the URL
as given but stores, returns and logs only :func:`redact_url`'s form, where
those parts read ``REDACTED``. The access log
(:mod:`._accesslog`) goes through :func:`redact_target` for the same reason
(``?api_key=`` in a request line). No HTTP stack here: the service core uses it.

What counts as secret: a query parameter whose *name* says so (see
:func:`is_secret_name`) or whose *value* looks like a credential (a JWT, or a
long random-looking token). Redacting too much only costs readability; the
original is never needed again once fetched.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_redacted",
    "is_secret_name",
    "redact_target",
    "redact_url",
    "scrub_secret_url",
]

REDACTED = "REDACTED"

#: Whole (normalised) names that are credentials.
_SECRET_NAMES = frozenset(
    {"key", "sig", "auth", "pwd", "pass", "jwt", "session", "sessionid", "sid", "hmac"}
)
#: Name fragments that mark a credential (``access_token``, ``X-Amz-Signature``...).
_SECRET_PARTS = (
    "token",
    "signature",
    "secret",
    "password",
    "passwd",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
)
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")
_TOKENISH = re.compile(r"[A-Za-z0-9_\-.~+/=%]{32,}")


def is_secret_name(name: str) -> bool:
    """True for query parameter names that hold credentials (case and ``-``/``_`` ignored)."""
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return norm in _SECRET_NAMES or any(part in norm for part in _SECRET_PARTS)


def _secret_value(value: str) -> bool:
    if _JWT.fullmatch(value):
        return True
    return bool(
        _TOKENISH.fullmatch(value) and re.search(r"[A-Za-z]", value) and re.search(r"[0-9]", value)
    )


def _redact_pairs(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=REDACTED``, keeping everything else byte for byte."""
    out = []
    for pair in text.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and (is_secret_name(name) or _secret_value(value)):
            pair = f"{name}={REDACTED}"
        elif not eq and _secret_value(name):
            pair = REDACTED
        out.append(pair)
    return "&".join(out)


def redact_url(url: str) -> str:
    """``url`` with userinfo and credential-looking query (and fragment) values replaced
    by ``REDACTED``; idempotent. Text that is not a URL is returned unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = _redact_pairs(parts.query) if parts.query else parts.query
    fragment = _redact_pairs(parts.fragment) if "=" in parts.fragment else parts.fragment
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def is_redacted(url: str) -> bool:
    """True when :func:`redact_url` took something out of ``url`` (so it cannot be fetched)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.netloc.startswith(f"{REDACTED}@"):
        return True
    return any(
        pair == REDACTED or pair.endswith(f"={REDACTED}")
        for section in (parts.query, parts.fragment)
        for pair in section.split("&")
    )


def redact_target(target: str) -> str:
    """A request target (``/path?query``) for the access log, query secrets redacted."""
    path, q, query = target.partition("?")
    return f"{path}?{_redact_pairs(query)}" if q else path


def scrub_secret_url(text: str, url: str | None) -> str:
    """``text`` (an error message) with ``url`` and its password, wherever they appear,
    redacted: for messages that may quote a database URL given with a password."""
    if not url:
        return text
    text = text.replace(url, redact_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, REDACTED) if password else text
