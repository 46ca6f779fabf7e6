"""The PostgreSQL projection (asyncpg): one database, every participant, one transaction a batch."""

from __future__ import annotations

import zlib
from datetime import datetime
from decimal import Decimal

import asyncpg
import msgspec

from projections.model import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ON_CONFLICT,
    PHASE_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_ON_CONFLICT,
    LedgerEvent,
    Upserts,
    upserts_above,
)
from projections.schema import POSTGRES_MIGRATIONS
from projections.store import LostLeadership, Position, ProjectedState

_MIGRATION_LOCK = 0x6E62_0001  # pg_advisory_lock key: "nb" + 1, shared by every projector


def _lock_key(name: str) -> int:
    return zlib.crc32(f"natsbank-projector:{name}".encode()) - 2**31  # a signed 32-bit key


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)


_TIME = "(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 millisecond')"  # unix ms -> timestamptz, exact
# Each row arrives as a JSON array in ACCOUNT_COLUMNS / TRANSFER_COLUMNS order (`r->>i`, text)
# and is cast to its column here: the money columns from exact text, the times from unix ms.
_ACCOUNT_CASTS = ("", "", "", "", "::numeric", "::numeric", "::numeric", "::boolean", _TIME, "",
                  "::bigint")  # fmt: skip
_TRANSFER_CASTS = ("",) * 14 + (_TIME,) * 5 + ("", "::bigint")


def _fields(casts: tuple[str, ...]) -> str:
    """The SELECT list that reads one JSON array `r` into the columns, with their casts."""
    return ", ".join(
        cast.format(f"(r->>{i})::bigint") if "{}" in cast else f"(r->>{i}){cast}"
        for i, cast in enumerate(casts)
    )


# A batch in one statement (one round trip, each table written once): every account upsert and
# every transfer upsert (each table's rows as one jsonb array of arrays: one parameter, decoded
# by the server, instead of an array parameter per column encoded value by value in Python), and
# the position they reach. A row never goes back to an older snapshot (`seq <`), and a phase
# time once set stays.
_APPLY = f"""
WITH account_rows AS (
    INSERT INTO accounts ({", ".join(ACCOUNT_COLUMNS)})
    SELECT {_fields(_ACCOUNT_CASTS)} FROM jsonb_array_elements($1::jsonb) AS r
    {ACCOUNT_ON_CONFLICT}
), transfer_rows AS (
    INSERT INTO transfers ({", ".join(TRANSFER_COLUMNS)})
    SELECT {_fields(_TRANSFER_CASTS)} FROM jsonb_array_elements($2::jsonb) AS r
    {TRANSFER_ON_CONFLICT}
)
INSERT INTO projection_position (stream, seq, last_event_at, applied_at)
VALUES ($3, $4::bigint, {_TIME.format("$5::bigint")}, now())
ON CONFLICT (stream) DO UPDATE SET seq = EXCLUDED.seq, applied_at = now(),
    last_event_at = COALESCE(EXCLUDED.last_event_at, projection_position.last_event_at)
"""
_rows_json = msgspec.json.Encoder()


def apply_args(stream: str, last_seq: int, upserts: Upserts) -> list:
    """The parameters of `_APPLY`: the accounts' rows, the transfers' rows, then the position."""
    return [
        _rows_json.encode(upserts.accounts).decode(),
        _rows_json.encode(upserts.transfers).decode(),
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
