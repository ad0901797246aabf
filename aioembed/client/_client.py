"""AsyncClient: one owned aiohttp session behind the Embed API."""

from __future__ import annotations

import os
from types import TracebackType

import aiohttp

from ..contract import v1
from ._assets import Assets
from .._ratelimits import RateLimits
from ._config import Limits, RetryPolicy, Timeouts
from ._embed import Embed
from ._transport import Transport

__all__ = ["DEFAULT_BASE_URL", "AsyncClient"]

DEFAULT_BASE_URL = "https://api.twelvelabs.io" + v1.PREFIX


class AsyncClient:
    """The Embed API over one aiohttp session, for use as ``async with``.

    ``base_url`` includes the version (``http://127.0.0.1:8000/v1.3`` for a local
    ``aioembed serve``). A ``session`` passed in is borrowed and never closed;
    otherwise the client opens its own on first use and closes it in
    :meth:`aclose` (idempotent). Using a closed client raises
    :class:`~aioembed.ClientClosedError`.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        limits: Limits = Limits(),
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required (or use AsyncClient.from_env())")
        self._transport = Transport(
            base_url=base_url,
            api_key=api_key,
            timeouts=timeouts,
            retry=retry,
            limits=limits,
            session=session,
        )
        self.embed = Embed(self._transport)
        self.assets = Assets(self._transport)

    @classmethod
    def from_env(
        cls,
        *,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        limits: Limits = Limits(),
        session: aiohttp.ClientSession | None = None,
    ) -> AsyncClient:
        """Read ``AIOEMBED_API_KEY`` or ``TWELVELABS_API_KEY``, and ``AIOEMBED_BASE_URL``."""
        key = os.environ.get("AIOEMBED_API_KEY") or os.environ.get("TWELVELABS_API_KEY")
        if not key:
            raise ValueError("set AIOEMBED_API_KEY or TWELVELABS_API_KEY")
        base_url = os.environ.get("AIOEMBED_BASE_URL") or DEFAULT_BASE_URL
        return cls(
            key, base_url=base_url, timeouts=timeouts, retry=retry, limits=limits, session=session
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def rate_limits(self) -> RateLimits | None:
        """The rate limits the server last reported (``X-Ratelimit-*``, every dimension)."""
        return self._transport.rate_limits

    async def __aenter__(self) -> AsyncClient:
        await self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()
