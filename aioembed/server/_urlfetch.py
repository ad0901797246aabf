"""Fetching ``video_url`` / ``image_url`` / ``audio_url`` inputs, safely.

Only ``http``/``https``; the body is streamed to a file with a size cap and
total/connect timeouts. Hosts that resolve to private, loopback, link-local,
multicast, reserved or unspecified addresses are refused (``400
parameter_invalid``) unless the allow-list names them. The check runs on every
hop (redirects are followed by hand, at most a few) and again inside the
connector's resolver, so a name that resolves differently the second time
(DNS rebinding) still cannot reach a forbidden address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import attrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .._params import invalid
from ..errors import ParameterError
from ._uploads import safe_filename, too_large

__all__ = [
    "AddressRefusedError",
    "FetchLimiter",
    "FetchedFile",
    "UrlPolicy",
    "check_url",
    "fetch_to_file",
    "make_session",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class UrlPolicy:
    """Which non-public destinations are allowed: networks and host names."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: Sequence[str]) -> UrlPolicy:
        """Entries are CIDRs (``127.0.0.0/8``), single IPs or host names."""
        nets: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(tuple(nets), frozenset(hosts))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def ip_allowed(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            # An IPv6 address that carries an IPv4 one reaches that IPv4 address (through
            # a NAT64 or 6to4 gateway, or the kernel): judge it by where it leads, so
            # [64:ff9b::a9fe:a9fe] is 169.254.169.254 and [::127.0.0.1] is loopback.
            if any(ip in net for net in _LOCAL_TRANSLATION):
                return False
            v4 = _embedded_ipv4(ip)
            if v4 is not None:
                return self.ip_allowed(v4)
        return ip.is_global and not ip.is_multicast


#: IPv6 ranges whose last 32 bits are an IPv4 address: NAT64 (RFC 6052), SIIT
#: (RFC 6145) and the deprecated IPv4-compatible form.
_EMBEDS_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))
#: Local-use translation prefix (RFC 8215): where the IPv4 address sits varies, never public.
_LOCAL_TRANSLATION = (ipaddress.IPv6Network("64:ff9b:1::/48"),)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _EMBEDS_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _refused(param: str) -> ParameterError:
    return invalid(
        param,
        f"{param} points at a private, loopback or link-local address, "
        "which this server does not fetch from.",
    )


def _parse(url: str | URL, param: str, *, redirect: bool = False) -> URL:
    """``url`` checked to be an absolute http(s) URL with a host and a valid port (yarl
    checks some parts only when they are read, so they are read here)."""
    what = f"Fetching {param} failed: the server redirected to" if redirect else param
    try:
        parsed = URL(url) if isinstance(url, str) else url
        host, _ = parsed.host, parsed.port
    except (ValueError, TypeError, UnicodeError):
        raise invalid(
            param,
            f"{what} an invalid URL."
            if redirect
            else f"{param} should be a valid http or https URL.",
        ) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise invalid(
            param,
            f"{what} a URL that is not http or https with a host."
            if redirect
            else f"{param} should be an http or https URL with a host.",
        )
    return parsed


async def check_url(
    url: str | URL, param: str, policy: UrlPolicy, *, redirect: bool = False
) -> URL:
    """Validate scheme and destination; raises ``ParameterError`` naming ``param``
    (``redirect``: the URL came from a ``Location`` header, and the message says so)."""
    parsed = _parse(url, param, redirect=redirect)
    host = parsed.host or ""
    if policy.host_allowed(host):
        return parsed
    ip = _ip(host)
    if ip is not None:
        if not policy.ip_allowed(ip):
            raise _refused(param)
        return parsed
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, parsed.port or 80, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        where = f"The host {param} redirected to" if redirect else f"The host of {param}"
        raise invalid(param, f"{where} could not be resolved.") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(
        (ip := _ip(str(a))) is not None and policy.ip_allowed(ip) for a in addresses
    ):
        raise _refused(param)
    return parsed


class AddressRefusedError(OSError):
    """The connector's resolver found only addresses the policy refuses.

    An ``OSError`` because aiohttp's connector wraps only those (as
    ``ClientConnectorError.os_error``); the fetch recognises it by type.
    """


class _PolicyResolver(AbstractResolver):
    """The default resolver, minus every address the policy refuses."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._policy.host_allowed(host):
            return results
        allowed = [
            r for r in results if (ip := _ip(r["host"])) is not None and self._policy.ip_allowed(ip)
        ]
        if not allowed:
            raise AddressRefusedError(
                f"{host} resolves only to addresses this server does not fetch from"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def make_session(
    policy: UrlPolicy, *, connect_timeout: float, limit: int = 32
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=_PolicyResolver(policy), limit=limit)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout),
        auto_decompress=False,
        trust_env=False,
        headers={"User-Agent": "aioembed-server"},
    )


@attrs.frozen
class FetchedFile:
    path: Path
    size: int
    sha256: str
    filename: str | None


#: Slowest transfer a fetch is allowed over each window (bytes/s), and the window (s).
MIN_RATE = 8 * 1024
RATE_WINDOW = 10.0


class FetchLimiter:
    """URL fetches in flight: at most ``total`` at once, and ``per_key`` for one API key.

    One tenant's slow URLs (a server trickling a byte per second) then hold only
    that tenant's slots; everyone else's fetches start at once. Waiters are served
    first come, first served per key; a key's semaphore is dropped when idle.
    """

    def __init__(self, *, total: int, per_key: int) -> None:
        self.total = asyncio.Semaphore(total)
        self.per_key = per_key
        self._keys: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        sem, users = self._keys.get(owner, (asyncio.Semaphore(self.per_key), 0))
        self._keys[owner] = (sem, users + 1)
        try:
            async with sem, self.total:
                yield
        finally:
            sem, users = self._keys[owner]
            if users <= 1:
                del self._keys[owner]
            else:
                self._keys[owner] = (sem, users - 1)

    def in_flight(self, owner: str) -> int:
        """Fetches of ``owner`` holding or waiting for a slot."""
        return self._keys.get(owner, (None, 0))[1]


async def fetch_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    param: str,
    policy: UrlPolicy,
    max_bytes: int,
    timeout: float,
    max_redirects: int = 5,
    min_rate: int = MIN_RATE,
    rate_window: float = RATE_WINDOW,
) -> FetchedFile:
    """Download ``url`` to ``dest`` (created fresh; removed again on any failure).

    The whole fetch has ``timeout`` seconds; besides, each ``rate_window`` (the
    wait for the answer's headers included) must bring ``min_rate`` bytes/s, so
    a server that trickles is given up on early. Raises ``ParameterError``
    naming ``param`` when the URL is refused or the download fails (status,
    timeout, too slow, connection, an unusable redirect), ``PayloadTooLargeError``
    past ``max_bytes``.
    """
    loop = asyncio.get_running_loop()
    target = await check_url(url, param, policy)
    fd = await loop.run_in_executor(
        None, lambda: os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    )
    sink = _Sink(fd, max_bytes, param)
    ok = False
    try:
        async with asyncio.timeout(timeout):
            for _ in range(max_redirects + 1):
                async with session.get(
                    target,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=session.timeout.sock_connect,
                        sock_read=rate_window if min_rate > 0 else None,
                    ),
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        target = await check_url(
                            _follow(target, resp.headers["Location"], param),
                            param,
                            policy,
                            redirect=True,
                        )
                        continue
                    if resp.status != 200:
                        raise invalid(
                            param,
                            f"Fetching {param} failed: the server answered HTTP {resp.status}.",
                        )
                    declared = resp.content_length
                    if declared is not None and declared > max_bytes:
                        raise too_large(max_bytes, f"file at {param}")
                    await _receive(resp.content, sink, min_rate, rate_window)
                    name = safe_filename(unquote(target.path.rsplit("/", 1)[-1]))
                    ok = True
                    return FetchedFile(dest, sink.size, sink.digest.hexdigest(), name)
            raise invalid(param, f"Fetching {param} failed: too many redirects.")
    except _TooSlowError as e:
        raise invalid(
            param,
            f"Fetching {param} failed: the transfer was slower than {min_rate} bytes/s "
            f"({e.got} bytes in {rate_window:g} s).",
        ) from None
    except aiohttp.ServerTimeoutError:
        raise invalid(param, f"Fetching {param} failed: no data for {rate_window:g} s.") from None
    except TimeoutError:
        raise invalid(param, f"Fetching {param} timed out after {timeout:g} s.") from None
    except (aiohttp.ClientError, OSError) as e:
        if isinstance(getattr(e, "os_error", e), AddressRefusedError):
            raise _refused(param) from None
        raise invalid(param, f"Fetching {param} failed: {_describe(e)}.") from None
    finally:
        await loop.run_in_executor(None, os.close, fd)
        if not ok:
            with contextlib.suppress(FileNotFoundError):
                await loop.run_in_executor(None, dest.unlink)


class _TooSlowError(Exception):
    def __init__(self, got: int) -> None:
        self.got = got


class _Sink:
    """The download's file, hash and size cap; writes go to a thread in 1 MB batches."""

    def __init__(self, fd: int, max_bytes: int, param: str) -> None:
        self.fd, self.max_bytes, self.param = fd, max_bytes, param
        self.digest = hashlib.sha256()
        self.size = 0
        self._buf = bytearray()

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes, f"file at {self.param}")
        self.digest.update(chunk)
        self._buf += chunk
        if len(self._buf) >= 1024 * 1024:
            await self.flush()

    async def flush(self) -> None:
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            await asyncio.get_running_loop().run_in_executor(None, _write_all, self.fd, data)

    async def finish(self) -> None:
        await self.flush()
        await asyncio.get_running_loop().run_in_executor(None, os.fsync, self.fd)


async def _receive(
    content: aiohttp.StreamReader, sink: _Sink, min_rate: int, window: float
) -> None:
    """The body into ``sink``, failing with ``_TooSlowError`` on a window below ``min_rate``."""
    loop = asyncio.get_running_loop()
    window_end, got = loop.time() + window, 0
    while True:
        chunk: bytes | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(window_end):
                chunk = await content.readany()
        if chunk == b"":
            break
        if chunk:
            got += len(chunk)
            await sink.add(chunk)
        if loop.time() >= window_end:
            if min_rate > 0 and got < min_rate * window:
                raise _TooSlowError(got)
            window_end, got = loop.time() + window, 0
    await sink.finish()


def _follow(base: URL, location: str, param: str) -> URL:
    """``Location`` resolved against the URL that answered it; ``ParameterError`` when it
    cannot be parsed (the remote server's fault, the input's problem: never a 500)."""
    try:
        return base.join(URL(location))
    except (ValueError, TypeError, UnicodeError):
        raise invalid(
            param, f"Fetching {param} failed: the server redirected to an invalid URL."
        ) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
