"""The PostgreSQL projection (asyncpg): one database, every participant, one transaction a batch."""

from __future__ import annotations

import zlib
from datetime import datetime
from decimal import Decimal

import asyncpg

from projections.model import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ON_CONFLICT,
    PHASE_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_ON_CONFLICT,
    LedgerEvent,
    Upserts,
    as_columns,
    upserts_above,
)
from projections.schema import POSTGRES_MIGRATIONS
from projections.store import LostLeadership, Position, ProjectedState

_MIGRATION_LOCK = 0x6E62_0001  # pg_advisory_lock key: "nb" + 1, shared by every projector


def _lock_key(name: str) -> int:
    return zlib.crc32(f"natsbank-projector:{name}".encode()) - 2**31  # a signed 32-bit key


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)


def _unnest(first: int, types: tuple[str, ...]) -> str:
    """`unnest($first::t1[], ...)`: one array parameter per column, one row per index."""
    arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(types, start=first))
    return f"unnest({arrays})"


_TIME = "(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 millisecond')"  # unix ms -> timestamptz, exact
_ACCOUNT_TYPES = ("text",) * 7 + ("boolean", "bigint", "text", "bigint")
_TRANSFER_TYPES = ("text",) * 14 + ("bigint",) * 5 + ("text", "bigint")
_ACCOUNT_COLUMNS = ", ".join(ACCOUNT_COLUMNS)
_TRANSFER_COLUMNS = ", ".join(TRANSFER_COLUMNS)
_N_ACCOUNT = len(ACCOUNT_COLUMNS)
_N_TRANSFER = len(TRANSFER_COLUMNS)
_AT = _N_ACCOUNT + _N_TRANSFER + 1  # the parameters after the columns: stream, seq, last time

# A batch in one statement (one round trip, each table written once): every account upsert,
# every transfer upsert (array parameters, one row per index), and the position they reach.
# A row never goes back to an older snapshot (`seq <`), and a phase time once set stays.
_APPLY = f"""
WITH account_rows AS (
    INSERT INTO accounts ({_ACCOUNT_COLUMNS})
    SELECT key, participant, account, currency, balance::numeric, pending_debits::numeric,
           pending_credits::numeric, closed, {_TIME.format("updated_at")}, stream, seq
    FROM {_unnest(1, _ACCOUNT_TYPES)} AS u({_ACCOUNT_COLUMNS})
    {ACCOUNT_ON_CONFLICT}
), transfer_rows AS (
    INSERT INTO transfers ({_TRANSFER_COLUMNS})
    SELECT key, participant, side, transfer_id, counterparty, debtor, creditor, amount,
           currency, comment, phase, outcome, cause, detail,
           {_TIME.format("reserved_at")}, {_TIME.format("settled_at")},
           {_TIME.format("decided_at")}, {_TIME.format("confirmed_at")},
           {_TIME.format("updated_at")}, stream, seq
    FROM {_unnest(_N_ACCOUNT + 1, _TRANSFER_TYPES)} AS u({_TRANSFER_COLUMNS})
    {TRANSFER_ON_CONFLICT}
)
INSERT INTO projection_position (stream, seq, last_event_at, applied_at)
VALUES (${_AT}, ${_AT + 1}::bigint, {_TIME.format(f"${_AT + 2}::bigint")}, now())
ON CONFLICT (stream) DO UPDATE SET seq = EXCLUDED.seq, applied_at = now(),
    last_event_at = COALESCE(EXCLUDED.last_event_at, projection_position.last_event_at)
"""


def apply_args(stream: str, last_seq: int, upserts: Upserts) -> list:
    """The parameters of `_APPLY`: the accounts' columns, the transfers', then the position."""
    return [
        *as_columns(upserts.accounts, _N_ACCOUNT),
        *as_columns(upserts.transfers, _N_TRANSFER),
        stream,
        last_seq,
        upserts.last_at,
    ]


def _text(value: Decimal) -> str:
    return format(value, "f")


class PostgresDb:
    """A projection in one PostgreSQL database; `dsn` is anything asyncpg accepts."""

    def __init__(self, dsn: str, schema: str = "public") -> None:
        self.dsn = dsn
        self.schema = schema  # one projection per schema: its own tables and positions
        self._conn: asyncpg.Connection | None = None
        self._leading: str | None = None

    async def open(self) -> None:
        self._conn = await self._connect()
        await migrate(self._conn, self.schema)

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()
        self._conn = None
        self._leading = None

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, server_settings={"search_path": self.schema})

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise ConnectionError("not connected to PostgreSQL")
        return self._conn

    async def reconnect(self) -> None:
        """A new session; a leader takes its lock again, or learns that it lost it."""
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = await self._connect()
        name = self._leading
        if name is not None and not await self._lock(name):
            self._leading = None
            raise LostLeadership(f"another projector holds the lock of {name}")

    async def try_lead(self, name: str) -> bool:
        """Hold a session advisory lock on the connection that applies the batches: one active
        projector per projection, others stand by; every commit is made under the lock."""
        if self._leading == name:
            return True
        if await self._lock(name):
            self._leading = name
            return True
        return False

    async def _lock(self, name: str) -> bool:
        return bool(await self.conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(name)))

    async def position(self, stream: str) -> int:
        seq = await self.conn.fetchval(
            "SELECT seq FROM projection_position WHERE stream = $1", stream
        )
        return seq or 0

    async def apply(self, stream: str, last_seq: int, events: list[LedgerEvent]) -> int:
        """Apply the events above the stored position and store `last_seq`, in one transaction:
        the position read under a row lock, then one statement that writes everything."""
        conn = self.conn
        async with conn.transaction():
            stored = await conn.fetchval(
                "SELECT seq FROM projection_position WHERE stream = $1 FOR UPDATE", stream
            )
            stored = stored or 0
            if last_seq <= stored:
                return 0
            upserts = upserts_above(events, stored)
            await conn.execute(_APPLY, *apply_args(stream, last_seq, upserts))
            return upserts.applied

    async def positions(self) -> list[Position]:
        rows = await self.conn.fetch(
            "SELECT stream, seq, last_event_at FROM projection_position ORDER BY stream"
        )
        return [Position(r["stream"], r["seq"], _ms(r["last_event_at"])) for r in rows]

    async def reset(self) -> None:
        await self.conn.execute("TRUNCATE accounts, transfers, projection_position")

    async def state(self) -> ProjectedState:
        accounts = await self.conn.fetch("SELECT * FROM accounts")
        transfers = await self.conn.fetch("SELECT * FROM transfers")
        return ProjectedState(
            {r["key"]: _account_tuple(r) for r in accounts},
            {r["key"]: _transfer_tuple(r) for r in transfers},
        )


def _account_tuple(r: asyncpg.Record) -> tuple:
    return (
        r["participant"], r["account"], r["currency"], _text(r["balance"]),
        _text(r["pending_debits"]), _text(r["pending_credits"]), r["closed"],
    )  # fmt: skip


def _transfer_tuple(r: asyncpg.Record) -> tuple:
    return (
        r["participant"], r["side"], r["transfer_id"], r["amount"], r["currency"], r["phase"],
        r["outcome"], r["cause"], r["detail"], tuple(_ms(r[c]) for c in PHASE_COLUMNS),
    )  # fmt: skip


async def migrate(conn: asyncpg.Connection, schema: str = "public") -> int:
    """Apply the embedded migrations not yet applied, under an advisory lock so that several
    projectors can start at once; returns how many were applied."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        quoted = '"' + schema.replace('"', '""') + '"'
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = 0
        for version, sql in enumerate(POSTGRES_MIGRATIONS, start=1):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied += 1
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
