"""Batch tier 2: one batch's journal in PostgreSQL, shared by processes on many machines.

``embed_many(..., journal="postgresql://host/db#NAME")`` (or ``aioembed embed
--journal postgresql://…#NAME``): the URL's fragment names the batch (``default``
without one), so one database holds many batches. Every process registers the
same item keys (an idempotent insert), then claims items a few at a time with
``FOR UPDATE SKIP LOCKED`` and a lease that a heartbeat renews while the process
works; a lease that expires (the process died) lets any process claim the item.

The rule of the SQLite journal (:mod:`._journal`) holds: the idempotency key is
committed when the item is registered (before any create), the task id right
after the create. A reclaimed item therefore resumes its task by id, or repeats
the create with the same key so the server answers with the original task: no
item is ever created twice. An item counts as *done* only when its holder says
its output is safe (:meth:`PgJournal.complete`; ``embed_many`` does it as the
outcome is handed on, ``aioembed embed`` after its part file is written), so a
process killed before writing its part loses nothing but time.

Vectors never go into the journal. The password in the URL never appears in an
error or a log line (:func:`redact`). Needs the ``aioembed[scale]`` extra
(asyncpg, imported when a journal opens).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio

from ..errors import JournalError
from ._journal import JournalEntry
from ._pacing import Pacer, TokenBucket

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DEFAULT_LEASE", "PgJournal", "SharedBucket", "is_pg_url", "redact"]

#: Seconds a claim lasts without a heartbeat (``?lease=`` in the URL changes it).
DEFAULT_LEASE = 30.0
_BATCH = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_SCHEMA = "aioembed_batch"
_COLUMNS = (
    "key, input, content_hash, idempotency_key, task_id, status, error_code, "
    "error_message, api, asset_id"
)
_NOW = "extract(epoch from clock_timestamp())::float8"


def is_pg_url(journal: object) -> bool:
    return isinstance(journal, str) and journal.lower().startswith(
        ("postgresql://", "postgres://")
    )


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _parse(url: str) -> tuple[str, str, float]:
    """``(dsn for asyncpg, batch name, lease seconds)``; ``ValueError`` if malformed."""
    parts = urlsplit(url)
    batch = parts.fragment or "default"
    if not _BATCH.fullmatch(batch):
        raise ValueError(
            f"journal {redact(url)}: the batch name after '#' should be 1-100 letters, "
            "digits, '.', '_' or '-'"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    lease = DEFAULT_LEASE
    for name, value in query:
        if name == "lease":
            try:
                lease = float(value)
            except ValueError:
                lease = -1.0
            if not 0.5 <= lease <= 86400:
                raise ValueError(f"journal {redact(url)}: lease should be 0.5 to 86400 seconds")
    rest = urlencode([(k, v) for k, v in query if k != "lease"])
    return urlunsplit(parts._replace(query=rest, fragment="")), batch, lease


_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {_SCHEMA};
CREATE TABLE IF NOT EXISTS {_SCHEMA}.items (
    batch text NOT NULL,
    key text NOT NULL,
    input text NOT NULL,
    content_hash text,
    idempotency_key text NOT NULL,
    task_id text,
    status text NOT NULL DEFAULT 'pending',
    error_code text,
    error_message text,
    api text NOT NULL DEFAULT 'v1',
    asset_id text,
    done boolean NOT NULL DEFAULT false,
    finished boolean NOT NULL DEFAULT false,
    owner text,
    expires float8,
    PRIMARY KEY (batch, key)
);
CREATE INDEX IF NOT EXISTS items_open ON {_SCHEMA}.items (batch, expires) WHERE NOT done;
CREATE TABLE IF NOT EXISTS {_SCHEMA}.buckets (
    batch text NOT NULL,
    name text NOT NULL,
    rate float8 NOT NULL,
    capacity float8 NOT NULL,
    tokens float8 NOT NULL,
    at float8 NOT NULL,
    PRIMARY KEY (batch, name)
);
"""


class PgJournal:
    """The journal of batch ``NAME`` in a PostgreSQL database (``postgresql://…#NAME``).

    Offers what :class:`~._journal.Journal` offers (``begin``, ``set_task``, …)
    plus the claims that share the batch: :meth:`register`, :meth:`claim`,
    :meth:`heartbeat`, :meth:`complete`. Errors (bad URL, unreachable database)
    raise :class:`~aioembed.JournalError`, the URL's password redacted.
    """

    def __init__(self, url: str, *, complete_on_emit: bool = True) -> None:
        #: ``embed_many`` marks an item done as it hands on its outcome; ``False`` leaves
        #: that to the caller (:meth:`complete`, once the output is stored).
        self.complete_on_emit = complete_on_emit
        self.path = redact(url)  # what messages name: never the password
        try:
            self._dsn, self.batch, self.lease = _parse(url)
        except ValueError as e:
            raise JournalError(str(e), path=self.path) from None
        self.owner = uuid.uuid4().hex
        self._pool: asyncpg.Pool | None = None

    def _fail(self, e: BaseException) -> JournalError:
        # asyncpg's messages never hold the DSN's password; the URL they name is ours.
        return JournalError(
            f"journal {self.path} cannot be used: {type(e).__name__}: {e}", path=self.path
        )

    async def open(self) -> None:
        """Connect and create the schema if needed; failures surface here, early."""
        if self._pool is not None:
            return
        try:
            import asyncpg
        except ImportError:
            raise JournalError(
                "a postgresql:// journal needs asyncpg: pip install 'aioembed[scale]'",
                path=self.path,
            ) from None
        try:
            with anyio.fail_after(30):
                pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as e:
            raise self._fail(e) from None
        self._pool = pool
        try:
            async with pool.acquire() as db, db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock(hashtext('aioembed_batch'))")
                await db.execute(_DDL)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with anyio.CancelScope(shield=True):
                await pool.close()

    async def _call(self, sql: str, *args: Any) -> list[Any]:
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        try:
            return list(await self._pool.fetch(sql, *args))
        except OSError as e:
            raise self._fail(e) from None
        except Exception as e:
            if type(e).__module__.startswith("asyncpg"):
                raise self._fail(e) from None
            raise

    # The batch's shared work list.

    async def register(self, items: Sequence[tuple[str, str]], *, api: str = "v1") -> None:
        """Add ``(key, input)`` items not known yet, each with a fresh idempotency key."""
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            await self._call(
                f"INSERT INTO {_SCHEMA}.items (batch, key, input, idempotency_key, api) "
                "SELECT $1, k, i, md5(random()::text || clock_timestamp()::text || k), $4 "
                "FROM unnest($2::text[], $3::text[]) AS t(k, i) ON CONFLICT DO NOTHING",
                self.batch,
                [k for k, _ in chunk],
                [i for _, i in chunk],
                api,
            )

    async def claim(self, limit: int, among: Sequence[str]) -> list[str]:
        """Up to ``limit`` of the keys ``among`` that nobody holds (not done, lease absent
        or expired), now ours. ``among`` (this process's inputs) goes with every claim:
        fine to some 100,000 keys a process."""
        rows = await self._call(
            f"UPDATE {_SCHEMA}.items SET owner = $2, expires = {_NOW} + $3, finished = false "
            f"WHERE (batch, key) IN (SELECT batch, key FROM {_SCHEMA}.items "
            f"WHERE batch = $1 AND NOT done AND (expires IS NULL OR expires < {_NOW}) "
            "AND key = ANY($5::text[]) LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING key",
            self.batch,
            self.owner,
            self.lease,
            limit,
            list(among),
        )
        return [r[0] for r in rows]

    async def others_open(self, among: Sequence[str]) -> int:
        """Items another process has not finished (it may die: worth waiting for), or
        whose holder's lease ran out before they were done."""
        rows = await self._call(
            f"SELECT count(*) FROM {_SCHEMA}.items WHERE batch = $1 AND NOT done "
            f"AND owner IS DISTINCT FROM $2 AND (NOT finished OR expires < {_NOW}) "
            "AND key = ANY($3::text[])",
            self.batch,
            self.owner,
            list(among),
        )
        return int(rows[0][0])

    async def heartbeat(self) -> None:
        """Extend every lease this process holds."""
        await self._call(
            f"UPDATE {_SCHEMA}.items SET expires = {_NOW} + $3 "
            "WHERE batch = $1 AND owner = $2 AND NOT done",
            self.batch,
            self.owner,
            self.lease,
        )

    async def keep_alive(self) -> None:
        """Heartbeat every third of a lease until cancelled."""
        while True:
            await anyio.sleep(self.lease / 3)
            await self.heartbeat()

    async def finish(self, key: str) -> None:
        """The item has its outcome here (its output not stored yet): others need not
        wait for it, but it stays ours, and comes back to them if we die first."""
        await self._call(
            f"UPDATE {_SCHEMA}.items SET finished = true "
            "WHERE batch = $1 AND owner = $2 AND key = $3",
            self.batch,
            self.owner,
            key,
        )

    async def complete(self, keys: Sequence[str]) -> None:
        """Mark ``keys`` done (their output is safe); only leases we still hold count."""
        await self._call(
            f"UPDATE {_SCHEMA}.items SET done = true, expires = NULL "
            "WHERE batch = $1 AND owner = $2 AND key = ANY($3::text[])",
            self.batch,
            self.owner,
            list(keys),
        )

    async def release(self, keys: Sequence[str]) -> None:
        """Give up our leases on ``keys`` (not done): any process may claim them."""
        await self._call(
            f"UPDATE {_SCHEMA}.items SET owner = NULL, expires = NULL, finished = false "
            "WHERE batch = $1 AND owner = $2 AND key = ANY($3::text[]) AND NOT done",
            self.batch,
            self.owner,
            list(keys),
        )

    def share(self, pacer: Pacer) -> None:
        """Swap ``pacer``'s buckets for ones in this database: every process of the
        batch then draws on one budget (the first process's rates and bursts)."""
        if pacer.requests is not None:
            pacer.requests = SharedBucket(self, "requests", pacer.requests)
        if pacer.media_seconds is not None:
            pacer.media_seconds = SharedBucket(self, "media_seconds", pacer.media_seconds)

    async def take(self, name: str, bucket: TokenBucket, amount: float) -> float:
        """Debit ``amount`` from the shared bucket ``name`` if it holds what
        :meth:`TokenBucket.take` needs; else debit nothing. Returns the seconds to wait
        before trying again (0: taken)."""
        need = min(amount, bucket.capacity - bucket.reserve) + bucket.reserve
        if self._pool is None:
            await self.open()
        assert self._pool is not None
        table = f"{_SCHEMA}.buckets"
        try:
            async with self._pool.acquire() as db, db.transaction():
                await db.execute(
                    f"INSERT INTO {table} VALUES ($1, $2, $3, $4, $4, {_NOW}) "
                    "ON CONFLICT DO NOTHING",
                    self.batch, name, bucket.rate, bucket.capacity,
                )  # fmt: skip
                # The row lock serialises the batch's processes: read, refill, debit.
                tokens, rate = await db.fetchrow(
                    f"UPDATE {table} SET tokens = least(capacity, tokens + "
                    f"greatest(0, {_NOW} - at) * rate), at = {_NOW} "
                    "WHERE batch = $1 AND name = $2 RETURNING tokens, rate",
                    self.batch, name,
                )  # fmt: skip
                if tokens < need:
                    return max(0.01, (need - float(tokens)) / float(rate))
                await db.execute(
                    f"UPDATE {table} SET tokens = tokens - $3 WHERE batch = $1 AND name = $2",
                    self.batch, name, amount,
                )  # fmt: skip
        except OSError as e:
            raise self._fail(e) from None
        except Exception as e:
            if type(e).__module__.startswith("asyncpg"):
                raise self._fail(e) from None
            raise
        return 0.0

    # What Journal offers, for the batch's per-item steps.

    async def begin(
        self, key: str, input: str, content_hash: str | None, *, api: str = "v1"
    ) -> JournalEntry:
        await self.register([(key, input)], api=api)
        await self._call(
            f"UPDATE {_SCHEMA}.items SET content_hash = coalesce(content_hash, $3) "
            "WHERE batch = $1 AND key = $2",
            self.batch,
            key,
            content_hash,
        )
        entry = await self.get(key)
        assert entry is not None
        return entry

    async def reset(self, key: str) -> JournalEntry:
        await self._call(
            f"UPDATE {_SCHEMA}.items SET task_id = NULL, status = 'pending', error_code = NULL, "
            "error_message = NULL, idempotency_key = $3 WHERE batch = $1 AND key = $2",
            self.batch,
            key,
            uuid.uuid4().hex,
        )
        entry = await self.get(key)
        assert entry is not None
        return entry

    async def get(self, key: str) -> JournalEntry | None:
        rows = await self._call(
            f"SELECT {_COLUMNS} FROM {_SCHEMA}.items WHERE batch = $1 AND key = $2",
            self.batch,
            key,
        )
        return JournalEntry(*rows[0]) if rows else None

    async def set_task(self, key: str, task_id: str) -> None:
        await self._call(
            f"UPDATE {_SCHEMA}.items SET task_id = $3, status = 'processing' "
            "WHERE batch = $1 AND key = $2",
            self.batch,
            key,
            task_id,
        )

    async def set_asset(self, key: str, asset_id: str | None) -> None:
        await self._call(
            f"UPDATE {_SCHEMA}.items SET asset_id = $3 WHERE batch = $1 AND key = $2",
            self.batch,
            key,
            asset_id,
        )

    async def set_status(
        self, key: str, status: str, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        await self._call(
            f"UPDATE {_SCHEMA}.items SET status = $3, error_code = $4, error_message = $5 "
            "WHERE batch = $1 AND key = $2",
            self.batch,
            key,
            status,
            error_code,
            error_message,
        )

    async def counts(self) -> dict[str, int]:
        rows = await self._call(
            f"SELECT status, count(*) FROM {_SCHEMA}.items WHERE batch = $1 GROUP BY status",
            self.batch,
        )
        return {str(s): int(n) for s, n in rows}


class SharedBucket(TokenBucket):
    """A :class:`~._pacing.TokenBucket` whose tokens live in the batch's database, so
    every process pacing with it together keeps the one rate.

    A take waits its turn in this process (as the local bucket's does), then debits
    the row in one statement; ``adjust`` (sync, after the fact) is carried into the
    next take.
    """

    def __init__(self, journal: PgJournal, name: str, local: TokenBucket) -> None:
        super().__init__(local.rate, local.capacity, reserve=local.reserve)
        self._journal = journal
        self._name = name
        self._credit = 0.0

    async def take(self, amount: float = 1.0) -> None:
        async with self._turn:
            while wait := await self._journal.take(self._name, self, amount - self._credit):
                await anyio.sleep(wait)
            self._credit = 0.0

    def adjust(self, amount: float) -> None:
        self._credit += amount
