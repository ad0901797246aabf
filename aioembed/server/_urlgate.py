"""The service's URL gate over :mod:`._urlfetch`: one session, one policy, the config's limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp

from ._config import ServerConfig
from ._urlfetch import FetchedFile, UrlPolicy, check_url, fetch_to_file

__all__ = ["HttpUrlGate"]


class HttpUrlGate:
    """:class:`~._service.UrlGate` for http(s) URLs, refusing what ``policy`` refuses."""

    def __init__(
        self,
        *,
        session: Callable[[], aiohttp.ClientSession],
        policy: UrlPolicy,
        config: ServerConfig,
    ) -> None:
        self._session = session
        self._policy = policy
        self._config = config

    async def check(self, url: str, param: str) -> None:
        await check_url(url, param, self._policy)

    async def fetch(self, url: str, dest: Path, param: str) -> FetchedFile:
        config = self._config
        return await fetch_to_file(
            self._session(),
            url,
            dest,
            param=param,
            policy=self._policy,
            max_bytes=config.url_max_bytes,
            timeout=config.url_fetch_timeout,
            max_redirects=config.url_max_redirects,
        )
