"""The projection contract, the same for PostgreSQL and SQLite: after transfers, the projection
equals the state in the ledger buckets (I6), whatever is redelivered, crashed or malformed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from eventsource.adapters.postgres import EmbeddedPostgres, PgServer
from eventsource.adapters.views import list_accounts, list_transfers
from eventsource.core.subjects import DEAD_LETTER_STREAM, ledger_stream, state_prefix
from projections.model import PHASE_COLUMN
from projections.postgres import PostgresDb
from projections.projector import Projector, caught_up, consumer_name, delete_consumers
from projections.sqlite import SqliteDb
from projections.store import ProjectionDb
from tests.integration.conftest import LiveBank, transfer

PHASES = list(PHASE_COLUMN)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PgServer]:
    """A real PostgreSQL in tmp_path, stopped after the test."""
    with EmbeddedPostgres(tmp_path / "pg") as server:
        yield server


@pytest.fixture(params=["postgres", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ProjectionDb]:
    """A factory of stores on one projection database: PostgreSQL or a SQLite directory."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        return lambda: PostgresDb(server.dsn)
    return lambda: SqliteDb(tmp_path / "sqlite")


def cli_args(store: ProjectionDb) -> list[str]:
    if isinstance(store, PostgresDb):
        return ["--dsn", store.dsn]
    assert isinstance(store, SqliteDb)
    return ["--sqlite", str(store.directory)]


def name_of(store: ProjectionDb) -> str:
    return "postgres" if isinstance(store, PostgresDb) else "sqlite"


async def kv_state(bank: LiveBank) -> tuple[dict, dict]:
    """What the projection must equal: every account and transfer record of the banks."""
    accounts = {
        f"{a.participant}.acct.{a.account}": (
            a.participant,
            a.account,
            a.currency,
            a.balance,
            a.pending_debits,
            a.pending_credits,
            a.closed,
        )
        for a in await list_accounts(bank.nc, bank.partitions)
    }
    records = {}
    for participant in bank.participants:
        for pattern in (f"{participant}.out.*", f"{participant}.in.*.*"):
            records |= await list_transfers(bank.nc, bank.partitions, pattern)
    transfers = {
        key: (
            key.split(".")[0],
            s.side.value,
            s.transfer.id,
            s.transfer.amount,
            s.transfer.currency,
            s.phase.value,
            s.outcome and s.outcome.value,
            s.cause and s.cause.value,
            s.detail,
        )
        for key, s in records.items()
    }
    return accounts, transfers


async def assert_projection_equals_state(bank: LiveBank, store: ProjectionDb) -> None:
    accounts, transfers = await kv_state(bank)
    projected = await store.state()
    assert projected.accounts == accounts
    assert {k: v[:9] for k, v in projected.transfers.items()} == transfers
    for key, row in projected.transfers.items():
        phase_times = dict(zip(PHASES, row[9], strict=True))
        assert phase_times[row[5]] is not None, f"{key}: no time for its phase {row[5]}"


async def eventually(
    check: Callable, what: str, timeout: float = 60.0, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def projecting(bank: LiveBank, store: ProjectionDb, **options) -> AsyncIterator[Projector]:
    """A projector running in the test's loop until the block ends; the store is opened here."""
    await store.open()
    projector = Projector(
        bank.nc, store, bank.partitions, name=options.pop("name", name_of(store)), **options
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await task
        await store.close()


async def until_caught_up(bank: LiveBank, projector: Projector) -> None:
    async def done() -> bool:
        bound = len(projector.bound) == bank.partitions
        return bound and await caught_up(bank.nc, projector.name, bank.partitions)

    await eventually(done, f"{projector.name} caught up")


async def run_transfers(bank: LiveBank, count: int = 12) -> None:
    """OK transfers both ways and a few REJECTED ones, all final, inboxes drained."""
    bank.start_all()
    by_submitter: dict[str, list] = {}
    for i in range(count):
        debtor, creditor = [("alpha/a1", "beta/b1"), ("beta/b2", "gamma/g1"),
                            ("gamma/g1", "alpha/a2")][i % 3]  # fmt: skip
        by_submitter.setdefault(debtor.split("/")[0], []).append(
            transfer(f"ok-{i}", debtor, creditor, f"{i + 1}.25")
        )
    by_submitter["alpha"] += [
        transfer("no-funds", "alpha/a1", "beta/b1", "5000.00"),
        transfer("no-acct", "alpha/a1", "beta/nope"),
        transfer("bad-ccy", "alpha/a2", "gamma/usd"),
        transfer("bad-amount", "alpha/a2", "beta/b1", "1.001"),
    ]
    for submitter, requests in by_submitter.items():
        await bank.submit(*requests)
        final = await bank.wait(submitter, [r.id for r in requests])
        assert len(final) == len(requests)
    await bank.quiet()


async def test_the_projection_equals_the_ledger_state(bank: LiveBank, make_store):
    await run_transfers(bank)
    async with projecting(bank, make_store()) as projector:
        await until_caught_up(bank, projector)
        await assert_projection_equals_state(bank, projector.store)
        projected = await projector.store.state()
        outcomes = {row[6] for row in projected.transfers.values()}
        assert outcomes == {"OK", "REJECTED"}
        if isinstance(projector.store, PostgresDb):  # the views a psql user starts from
            conn = projector.store.conn
            summary = await conn.fetch("SELECT * FROM participant_summary ORDER BY participant")
            assert [r["participant"] for r in summary] == ["alpha", "beta", "gamma"]
            assert all(r["open"] == 0 for r in summary)
            assert await conn.fetchval("SELECT count(*) FROM stuck_transfers") == 0
            statuses = await conn.fetch("SELECT * FROM transfers_by_status")
            assert sum(r["transfers"] for r in statuses) == len(projected.transfers)


async def test_events_delivered_again_change_nothing(bank: LiveBank, make_store):
    await run_transfers(bank)
    async with projecting(bank, make_store()) as projector:
        await until_caught_up(bank, projector)
        before = await projector.store.state()
        for k in range(bank.partitions):  # the whole stream once more, through a new consumer
            js = bank.nc.jetstream()
            stream = ledger_stream(k)
            config = ConsumerConfig(
                durable_name="again",
                filter_subject=f"{state_prefix(k)}>",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
            )
            await js.add_consumer(stream, config)
            sub = await js.pull_subscribe_bind("again", stream=stream)
            msgs = await sub.fetch(10_000, timeout=2.0)
            applied = projector.stats.applied
            await projector.apply_batch(stream, msgs, asyncio.Event())
            assert projector.stats.applied == applied
            await sub.unsubscribe()
        assert await projector.store.state() == before
    # And a projector whose consumer was deleted resumes from its database, not from scratch.
    await delete_consumers(bank.nc, name_of(projector.store), bank.partitions)
    async with projecting(bank, make_store()) as again:
        await until_caught_up(bank, again)
        assert again.stats.applied == 0
        assert await again.store.state() == before


async def test_a_projector_killed_mid_run_ends_equal_to_the_state(
    bank: LiveBank, make_store, tmp_path: Path
):
    await run_transfers(bank, count=60)
    store = make_store()
    command = [sys.executable, "-m", "eventsource.cli", "projections", "run", *cli_args(store)]
    env = os.environ | {"NATS_URL": bank.cluster.url}
    with (tmp_path / "projector.log").open("wb") as log:
        first = subprocess.Popen([*command, "--batch", "1"], env=env, stderr=log)
        await store.open()
        try:

            async def started() -> bool:
                return any(p.seq > 0 for p in await store.positions())

            await eventually(started, "the projector applied a batch", interval=0.01)
        finally:
            first.send_signal(signal.SIGKILL)  # between or during its transactions
            first.wait()
            await store.close()
        second = subprocess.Popen(command, env=env, stderr=log)
        try:
            await eventually(lambda: equals_state(bank, make_store()), "the restart caught up")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, "the projector does not stop cleanly on SIGTERM"


async def equals_state(bank: LiveBank, store: ProjectionDb) -> bool:
    await store.open()
    try:
        await assert_projection_equals_state(bank, store)
    except AssertionError:
        return False
    finally:
        await store.close()
    return True


async def test_a_junk_state_event_is_dead_lettered_and_projection_goes_on(
    bank: LiveBank, make_store
):
    js = bank.nc.jetstream()
    await js.publish(f"{state_prefix(0)}x.out.y", b"not an event")
    await run_transfers(bank)
    async with projecting(bank, make_store()) as projector:
        await until_caught_up(bank, projector)
        await assert_projection_equals_state(bank, projector.store)
        assert projector.stats.dead_letters == 1
    letters = await js.pull_subscribe("nb.dlq.x", stream=DEAD_LETTER_STREAM)
    [letter] = await letters.fetch(1, timeout=5.0)
    assert letter.data == b"not an event"
    assert letter.headers and letter.headers["Natsbank-Reason"] == "UNDECODABLE"


async def test_two_projectors_start_at_once_on_postgres(bank: LiveBank, postgres: PgServer):
    await run_transfers(bank)
    async with (
        projecting(bank, PostgresDb(postgres.dsn)) as one,
        projecting(bank, PostgresDb(postgres.dsn)) as two,
    ):
        await eventually(
            lambda: _any_set(one.leading, two.leading), "one of the two projectors leads"
        )
        leader = one if one.leading.is_set() else two
        await until_caught_up(bank, leader)
        await assert_projection_equals_state(bank, leader.store)
        assert not (one.leading.is_set() and two.leading.is_set())
    assert consumer_name("postgres", 0) == "projector_postgres_0"


async def _any_set(*events: asyncio.Event) -> bool:
    return any(e.is_set() for e in events)


async def test_a_participant_s_sqlite_file_holds_its_own_records_only(
    bank: LiveBank, tmp_path: Path
):
    await run_transfers(bank)
    store = SqliteDb(tmp_path / "beta-only", "beta")
    async with projecting(bank, store, name="sqlite_beta", participant="beta") as projector:
        await until_caught_up(bank, projector)
        projected = await store.state()
    accounts, transfers = await kv_state(bank)
    assert projected.accounts == {k: v for k, v in accounts.items() if k.startswith("beta.")}
    assert {k: v[:9] for k, v in projected.transfers.items()} == {
        k: v for k, v in transfers.items() if k.startswith("beta.")
    }
    assert [p.name for p in (tmp_path / "beta-only").glob("*.sqlite")] == ["beta.sqlite"]


async def test_a_participant_projection_beside_the_full_one_on_postgres(
    bank: LiveBank, postgres: PgServer
):
    await run_transfers(bank)
    beta_store = PostgresDb(postgres.dsn, "postgres_beta")
    async with (
        projecting(bank, PostgresDb(postgres.dsn)) as full,
        projecting(bank, beta_store, name="postgres_beta", participant="beta") as beta,
    ):
        await until_caught_up(bank, full)
        await until_caught_up(bank, beta)
        await assert_projection_equals_state(bank, full.store)
        projected = await beta_store.state()
    accounts, transfers = await kv_state(bank)
    assert projected.accounts == {k: v for k, v in accounts.items() if k.startswith("beta.")}
    assert {k: v[:9] for k, v in projected.transfers.items()} == {
        k: v for k, v in transfers.items() if k.startswith("beta.")
    }
