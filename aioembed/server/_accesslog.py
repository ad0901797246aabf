"""The access log, with secrets in query strings redacted (see :mod:`._redact`)."""

from __future__ import annotations

import logging

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from ._redact import redact_target

__all__ = ["RedactingAccessLogger"]


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: client, request line (query secrets redacted), status,
    body bytes, seconds. No headers and no Referer, which may carry keys too."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        version = request.version
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            request.remote,
            request.method,
            redact_target(request.raw_path),
            version.major,
            version.minor,
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
