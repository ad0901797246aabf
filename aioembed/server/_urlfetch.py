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
from collections.abc import Sequence
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


def _parse(url: str, param: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise invalid(param, f"{param} should be a valid http or https URL.") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise invalid(param, f"{param} should be an http or https URL with a host.")
    return parsed


async def check_url(url: str, param: str, policy: UrlPolicy) -> URL:
    """Validate scheme and destination; raises ``ParameterError`` naming ``param``."""
    parsed = _parse(url, param)
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
        raise invalid(param, f"The host of {param} could not be resolved.") from None
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


def make_session(policy: UrlPolicy, *, connect_timeout: float) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=_PolicyResolver(policy), limit=32)
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
) -> FetchedFile:
    """Download ``url`` to ``dest`` (created fresh; removed again on any failure).

    Raises ``ParameterError`` naming ``param`` when the URL is refused or the
    download fails (status, timeout, connection), ``PayloadTooLargeError`` past
    ``max_bytes``.
    """
    loop = asyncio.get_running_loop()
    target = await check_url(url, param, policy)
    fd = await loop.run_in_executor(
        None, lambda: os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    )
    digest = hashlib.sha256()
    size = 0
    ok = False
    try:
        async with asyncio.timeout(timeout):
            for _ in range(max_redirects + 1):
                async with session.get(target, allow_redirects=False) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                        nxt = target.join(URL(resp.headers["Location"]))
                        target = await check_url(str(nxt), param, policy)
                        continue
                    if resp.status != 200:
                        raise invalid(
                            param,
                            f"Fetching {param} failed: the server answered HTTP {resp.status}.",
                        )
                    declared = resp.content_length
                    if declared is not None and declared > max_bytes:
                        raise too_large(max_bytes, f"file at {param}")
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        size += len(chunk)
                        if size > max_bytes:
                            raise too_large(max_bytes, f"file at {param}")
                        digest.update(chunk)
                        buf += chunk
                        if len(buf) >= 1024 * 1024:
                            data, buf = bytes(buf), bytearray()
                            await loop.run_in_executor(None, _write_all, fd, data)
                    if buf:
                        await loop.run_in_executor(None, _write_all, fd, bytes(buf))
                    await loop.run_in_executor(None, os.fsync, fd)
                    name = safe_filename(unquote(target.path.rsplit("/", 1)[-1]))
                    ok = True
                    return FetchedFile(dest, size, digest.hexdigest(), name)
            raise invalid(param, f"Fetching {param} failed: too many redirects.")
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
