"""The SQLite projection (aiosqlite): one database file per participant in a directory, each
holding that participant's accounts, its own transfer records and its own stream positions."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import sqlite3
import time
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path

import aiosqlite

from projections.model import (
    ACCOUNT_COLUMNS,
    ACCOUNT_ON_CONFLICT,
    TRANSFER_COLUMNS,
    TRANSFER_ON_CONFLICT,
    LedgerEvent,
    upserts_above,
)
from projections.schema import SQLITE_MIGRATIONS
from projections.store import Position, ProjectedState

SUFFIX = ".sqlite"

_UPSERT_ACCOUNT = f"""
INSERT INTO accounts ({", ".join(ACCOUNT_COLUMNS)})
VALUES ({", ".join("?" * len(ACCOUNT_COLUMNS))})
{ACCOUNT_ON_CONFLICT}
"""

_UPSERT_TRANSFER = f"""
INSERT INTO transfers ({", ".join(TRANSFER_COLUMNS)})
VALUES ({", ".join("?" * len(TRANSFER_COLUMNS))})
{TRANSFER_ON_CONFLICT}
"""


_SET_POSITION = """
INSERT INTO projection_position (stream, seq, last_event_at, applied_at) VALUES (?, ?, ?, ?)
ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, applied_at = excluded.applied_at,
    last_event_at = COALESCE(excluded.last_event_at, projection_position.last_event_at)
"""


async def _open_database(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("PRAGMA busy_timeout=10000")
    await db.execute("BEGIN IMMEDIATE")  # one migrator at a time, also across processes
    try:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at INTEGER NOT NULL)"
        )
        async with db.execute("SELECT version FROM schema_migrations") as cursor:
            done = {row[0] async for row in cursor}
        for version, sql in enumerate(SQLITE_MIGRATIONS, start=1):
            if version not in done:
                for statement in filter(str.strip, sql.split(";")):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (version, int(time.time()))
                )
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        await db.close()
        raise
    return db


class SqliteDb:
    """`directory/<participant>.sqlite`; with `participant`, only that participant's file."""

    def __init__(self, directory: Path, participant: str | None = None) -> None:
        self.directory = Path(directory)
        self.participant = participant
        self._dbs: dict[str, aiosqlite.Connection] = {}
        self._lock_file = None

    async def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        names = [self.participant] if self.participant else self._existing()
        for name in names:
            await self._db(name)

    def _existing(self) -> list[str]:
        return sorted(p.name[: -len(SUFFIX)] for p in self.directory.glob(f"*{SUFFIX}"))

    async def _db(self, participant: str) -> aiosqlite.Connection:
        if participant not in self._dbs:
            self._dbs[participant] = await _open_database(self.directory / f"{participant}{SUFFIX}")
        return self._dbs[participant]

    async def close(self) -> None:
        for db in self._dbs.values():
            await db.close()
        self._dbs.clear()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def reconnect(self) -> None:
        names = list(self._dbs)
        for db in self._dbs.values():
            with contextlib.suppress(Exception):
                await db.close()
        self._dbs.clear()
        for name in names:
            await self._db(name)

    async def try_lead(self, name: str) -> bool:
        """An exclusive flock on a file in the directory: one active projector per directory."""
        if self._lock_file is None:
            self._lock_file = (self.directory / f".projector-{name}.lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def position(self, stream: str) -> int:
        """The lowest position over the files: below it, every file has applied everything."""
        seqs = [await _stored(db, stream) for db in self._dbs.values()]
        return min(seqs, default=0)

    async def apply(self, stream: str, last_seq: int, events: list[LedgerEvent]) -> int:
        """One transaction per participant file, each with its own position. The files commit
        at once (each connection has its own thread, each file its own fsync); a failure is
        raised once every file's transaction has ended, so a retry finds none open."""
        by_participant: dict[str, list[LedgerEvent]] = defaultdict(list)
        for event in events:
            if self.participant in (None, event.row.participant):
                by_participant[event.row.participant].append(event)
        files = [(await self._db(p), mine) for p, mine in by_participant.items()]
        results = await asyncio.gather(
            *(_on_thread(db, _apply_one, stream, last_seq, mine) for db, mine in files),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(results)  # type: ignore[arg-type]

    async def positions(self) -> list[Position]:
        for name in [] if self.participant else self._existing():
            await self._db(name)  # files another process created since open()
        best: dict[str, Position] = {}
        for db in self._dbs.values():
            query = "SELECT stream, seq, last_event_at FROM projection_position"
            async with db.execute(query) as cursor:
                async for stream, seq, at in cursor:
                    old = best.get(stream)
                    low = min(seq, old.seq) if old else seq
                    last = max(filter(None, (at, old.last_event_at if old else None)), default=None)
                    best[stream] = Position(stream, low, last)
        return [best[s] for s in sorted(best)]

    async def reset(self) -> None:
        for db in self._dbs.values():
            await db.execute("BEGIN IMMEDIATE")
            for table in ("accounts", "transfers", "projection_position"):
                await db.execute(f"DELETE FROM {table}")
            await db.execute("COMMIT")

    async def state(self) -> ProjectedState:
        accounts: dict[str, tuple] = {}
        transfers: dict[str, tuple] = {}
        for db in self._dbs.values():
            query = (
                "SELECT key, participant, account, currency, balance, pending_debits, "
                "pending_credits, closed FROM accounts"
            )
            async with db.execute(query) as cursor:
                async for key, *values in cursor:
                    accounts[key] = (*values[:-1], bool(values[-1]))
            query = (
                "SELECT key, participant, side, transfer_id, amount, currency, phase, outcome, "
                "cause, detail, reserved_at, settled_at, decided_at, confirmed_at FROM transfers"
            )
            async with db.execute(query) as cursor:
                async for key, *values in cursor:
                    transfers[key] = (*values[:9], tuple(values[9:]))
        return ProjectedState(accounts, transfers)


_READ_POSITION = "SELECT seq FROM projection_position WHERE stream = ?"


async def _stored(db: aiosqlite.Connection, stream: str) -> int:
    async with db.execute(_READ_POSITION, (stream,)) as c:
        row = await c.fetchone()
    return row[0] if row else 0


def _apply_one(
    conn: sqlite3.Connection, stream: str, last_seq: int, events: list[LedgerEvent]
) -> int:
    """One file's transaction, whole, on its connection's thread (`_on_thread`): the position
    read, the upserts above it, the new position; committed, or rolled back before raising."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(_READ_POSITION, (stream,)).fetchone()
        stored = row[0] if row else 0
        applied = 0
        if last_seq > stored:
            upserts = upserts_above(events, stored)
            if upserts.accounts:
                conn.executemany(_UPSERT_ACCOUNT, upserts.accounts)
            if upserts.transfers:
                conn.executemany(_UPSERT_TRANSFER, upserts.transfers)
            now_ms = int(time.time() * 1000)
            conn.execute(_SET_POSITION, (stream, last_seq, upserts.last_at, now_ms))
            applied = upserts.applied
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise
    return applied


def _on_thread(db: aiosqlite.Connection, call, *args) -> Awaitable:
    """Run `call(connection, *args)` on the aiosqlite connection's own thread, in one hop: a
    whole transaction, instead of a hop (a queue and a wake-up) for every statement."""
    return db._execute(call, db._conn, *args)
