"""The service's URL gate over :mod:`._urlfetch`: one session, one policy, the config's limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp

from ._config import ServerConfig
from ._urlfetch import FetchedFile, FetchLimiter, UrlPolicy, check_url, fetch_to_file

__all__ = ["HttpUrlGate"]


class HttpUrlGate:
    """:class:`~._service.UrlGate` for http(s) URLs, refusing what ``policy`` refuses.

    Downloads take a slot of their key (``url_fetch_per_key``) and of the server
    (``url_fetch_concurrency``), so one tenant's slow URLs never hold everyone's.
    """

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
        self._limiter = FetchLimiter(
            total=config.url_fetch_concurrency, per_key=config.url_fetch_per_key
        )
        #: ``video_url`` as given, for tasks whose stored URL is redacted; memory only.
        self._given: dict[str, str] = {}

    async def check(self, url: str, param: str) -> None:
        await check_url(url, param, self._policy)

    async def fetch(self, url: str, dest: Path, param: str, *, owner: str = "") -> FetchedFile:
        config = self._config
        async with self._limiter.slot(owner):
            return await fetch_to_file(
                self._session(),
                url,
                dest,
                param=param,
                policy=self._policy,
                max_bytes=config.url_max_bytes,
                timeout=config.url_fetch_timeout,
                max_redirects=config.url_max_redirects,
                min_rate=config.url_min_rate,
                rate_window=config.url_rate_window,
            )

    def remember(self, task_id: str, url: str) -> None:
        self._given[task_id] = url

    def given(self, task_id: str, stored: str) -> str:
        return self._given.get(task_id, stored)

    def forget(self, task_id: str) -> None:
        self._given.pop(task_id, None)
