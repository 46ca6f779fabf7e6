"""The PostgreSQL projection (asyncpg): one database, every participant, one transaction a batch."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from projections.model import (
    AccountRow,
    LedgerEvent,
    TransferRow,
    last_per_key,
    merged_per_key,
)
from projections.schema import POSTGRES_MIGRATIONS
from projections.store import LostLeadership, Position, ProjectedState

_MIGRATION_LOCK = 0x6E62_0001  # pg_advisory_lock key: "nb" + 1, shared by every projector


def _lock_key(name: str) -> int:
    return zlib.crc32(f"natsbank-projector:{name}".encode()) - 2**31  # a signed 32-bit key


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(value: datetime | None) -> int | None:
    return None if value is None else round(value.timestamp() * 1000)


_UPSERT_ACCOUNT = """
INSERT INTO accounts (key, participant, account, currency, balance, pending_debits,
                      pending_credits, closed, updated_at, stream, seq)
VALUES ($1, $2, $3, $4, $5::numeric, $6::numeric, $7::numeric, $8, $9, $10, $11)
ON CONFLICT (key) DO UPDATE SET
    currency = EXCLUDED.currency, balance = EXCLUDED.balance,
    pending_debits = EXCLUDED.pending_debits, pending_credits = EXCLUDED.pending_credits,
    closed = EXCLUDED.closed, updated_at = EXCLUDED.updated_at,
    stream = EXCLUDED.stream, seq = EXCLUDED.seq
WHERE accounts.seq < EXCLUDED.seq  -- a row never goes back to an older snapshot
"""

_UPSERT_TRANSFER = """
INSERT INTO transfers (key, participant, side, transfer_id, counterparty, debtor, creditor,
                       amount, currency, comment, phase, outcome, cause, detail,
                       reserved_at, settled_at, decided_at, confirmed_at, updated_at, stream, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
        $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (key) DO UPDATE SET
    debtor = EXCLUDED.debtor, creditor = EXCLUDED.creditor, amount = EXCLUDED.amount,
    currency = EXCLUDED.currency, comment = EXCLUDED.comment, phase = EXCLUDED.phase,
    outcome = EXCLUDED.outcome, cause = EXCLUDED.cause, detail = EXCLUDED.detail,
    reserved_at = COALESCE(transfers.reserved_at, EXCLUDED.reserved_at),
    settled_at = COALESCE(transfers.settled_at, EXCLUDED.settled_at),
    decided_at = COALESCE(transfers.decided_at, EXCLUDED.decided_at),
    confirmed_at = COALESCE(transfers.confirmed_at, EXCLUDED.confirmed_at),
    updated_at = EXCLUDED.updated_at, stream = EXCLUDED.stream, seq = EXCLUDED.seq
WHERE transfers.seq < EXCLUDED.seq
"""

_PHASE_COLUMNS = ("reserved_at", "settled_at", "decided_at", "confirmed_at")


def _account_args(event: LedgerEvent, row: AccountRow) -> tuple:
    return (
        row.key, row.participant, row.account, row.currency, row.balance, row.pending_debits,
        row.pending_credits, row.closed, _ts(row.at), event.stream, event.seq,
    )  # fmt: skip


def _transfer_args(event: LedgerEvent, row: TransferRow) -> tuple:
    phases = tuple(_ts(row.at) if c == row.phase_column else None for c in _PHASE_COLUMNS)
    return (
        row.key, row.participant, row.side, row.transfer_id, row.counterparty, row.debtor,
        row.creditor, row.amount, row.currency, row.comment, row.phase, row.outcome, row.cause,
        row.detail, *phases, _ts(row.at), event.stream, event.seq,
    )  # fmt: skip


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
        """Apply the events above the stored position and store `last_seq`, in one transaction."""
        conn = self.conn
        async with conn.transaction():
            stored = await conn.fetchval(
                "SELECT seq FROM projection_position WHERE stream = $1 FOR UPDATE", stream
            )
            stored = stored or 0
            if last_seq <= stored:
                return 0
            todo = [e for e in events if e.seq > stored]
            accounts = last_per_key(
                [_account_args(e, e.row) for e in todo if isinstance(e.row, AccountRow)]
            )
            transfers = merged_per_key(
                [_transfer_args(e, e.row) for e in todo if isinstance(e.row, TransferRow)]
            )
            if accounts:
                await conn.executemany(_UPSERT_ACCOUNT, accounts)
            if transfers:
                await conn.executemany(_UPSERT_TRANSFER, transfers)
            last_at = max((e.row.at for e in todo), default=None)
            await conn.execute(
                """INSERT INTO projection_position (stream, seq, last_event_at, applied_at)
                   VALUES ($1, $2, $3, now())
                   ON CONFLICT (stream) DO UPDATE SET seq = EXCLUDED.seq, applied_at = now(),
                       last_event_at = COALESCE(EXCLUDED.last_event_at,
                                                projection_position.last_event_at)""",
                stream,
                last_seq,
                _ts(last_at),
            )
            return len(todo)

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
        r["outcome"], r["cause"], r["detail"], tuple(_ms(r[c]) for c in _PHASE_COLUMNS),
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
