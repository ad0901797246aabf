"""Per-key token buckets in PostgreSQL, shared by every server replica.

The same bucket rule as :class:`~._ratelimit.RateLimiter` (``requests`` tokens,
refilled evenly over ``per`` seconds), but one row per key in the database, so
``X-Ratelimit-*`` and 429s agree whichever replica answers. A request is one
``INSERT … ON CONFLICT DO UPDATE``: the row lock serialises concurrent takes of
one key, and the refill uses the database's clock (one clock for every host).
The media ``duration`` bucket lives in the same table under the key
``duration:<owner>``. Needs the ``aioembed[scale]`` extra (asyncpg).
"""

from __future__ import annotations

import re

import asyncpg

from ._config import RateLimit
from ._ratelimit import REQUESTS, Decision

__all__ = ["PostgresRateLimiter"]

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,47}")
#: Transaction start (one value for the whole statement), seconds.
_NOW = "extract(epoch from now())::float8"
#: The bucket refilled up to now, from the row as it was.
_REFILLED = f"least($2, b.tokens + greatest(0, {_NOW} - b.at) * $3)"
#: Tokens a take of ``$4`` needs in the bucket: a take over the capacity passes when full.
_NEED = "least($4, $2)"


def _schema_sql(s: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {s};
    CREATE TABLE IF NOT EXISTS {s}.rate_buckets (
        owner text PRIMARY KEY,
        tokens float8 NOT NULL,
        at float8 NOT NULL,
        allowed boolean NOT NULL
    );
    """


class PostgresRateLimiter:
    """:class:`~._ratelimit.Limiter` with its buckets in ``schema`` at ``dsn``.

    Use as ``async with PostgresRateLimiter(limit, dsn) as limiter: ...``.
    """

    def __init__(
        self,
        limit: RateLimit,
        dsn: str,
        *,
        schema: str = "aioembed",
        pool_size: int = 4,
        dimension: str = REQUESTS,
    ) -> None:
        if not _IDENT.fullmatch(schema):
            raise ValueError(f"schema must match {_IDENT.pattern}, got {schema!r}")
        self.limit = limit
        self.dimension = dimension
        self._prefix = "" if dimension == REQUESTS else f"{dimension}:"
        self._dsn, self._s, self._pool_size = dsn, schema, pool_size
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> PostgresRateLimiter:
        # A bucket is not worth an fsync per request (5 ms on a plain disk): a crash may
        # forget the last few takes, i.e. hand out a few tokens twice. Tasks keep theirs.
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=30,
            server_settings={"synchronous_commit": "off"},
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._s)
            await conn.execute(_schema_sql(self._s))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def acquire(self, owner: str) -> Decision:
        return await self.debit(owner, 1.0)

    async def debit(self, owner: str, cost: float) -> Decision:
        if self._pool is None:
            raise RuntimeError("PostgresRateLimiter is not open")
        # Every SET expression reads the row as it was before this request.
        row = await self._pool.fetchrow(
            f"""INSERT INTO {self._s}.rate_buckets AS b (owner, tokens, at, allowed)
                VALUES ($1, $2::float8 - $4::float8, {_NOW}, true)
                ON CONFLICT (owner) DO UPDATE SET
                    tokens = {_REFILLED} - CASE WHEN {_REFILLED} >= {_NEED} THEN $4 ELSE 0 END,
                    allowed = {_REFILLED} >= {_NEED},
                    at = {_NOW}
                RETURNING tokens, allowed""",
            self._prefix + owner,
            float(self.limit.requests),
            self.limit.rate,
            float(cost),
        )
        assert row is not None  # an upsert with RETURNING always returns its row
        return Decision.of(
            self.limit,
            float(row["tokens"]),
            bool(row["allowed"]),
            need=min(cost, float(self.limit.requests)),
            dimension=self.dimension,
        )

    async def adjust(self, owner: str, delta: float) -> None:
        if self._pool is None:
            raise RuntimeError("PostgresRateLimiter is not open")
        await self._pool.execute(
            f"""INSERT INTO {self._s}.rate_buckets AS b (owner, tokens, at, allowed)
                VALUES ($1, least($2::float8, $2::float8 + $4::float8), {_NOW}, true)
                ON CONFLICT (owner) DO UPDATE SET
                    tokens = least($2, {_REFILLED} + $4), at = {_NOW}""",
            self._prefix + owner,
            float(self.limit.requests),
            self.limit.rate,
            float(delta),
        )
