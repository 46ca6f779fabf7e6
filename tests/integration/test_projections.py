"""The projection contract, the same for PostgreSQL and SQLite: after transfers, the projection
shows the balances and outcomes those transfers imply, and equals the state in the ledger buckets
(I6), whatever is redelivered, crashed or malformed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from eventsource.adapters.postgres import PgServer
from eventsource.core.errors import RejectionCause
from eventsource.core.model import Outcome
from eventsource.core.subjects import DEAD_LETTER_STREAM, state_prefix
from projections.consumers import consumer_name, delete_consumers
from projections.postgres import PostgresDb
from projections.sqlite import SqliteDb
from tests.integration.live_bank import LiveBank, transfer
from tests.integration.mixed_transfers import run_transfers
from tests.integration.polling import eventually
from tests.integration.projecting import (
    ROUTES,
    cli_args,
    deliver_everything_again,
    name_of,
    of_beta,
    projecting,
    until_caught_up,
)
from tests.integration.projection_state import assert_projection_equals_state, equals_state

# What run_transfers(bank) leaves, worked out from the scenario by hand rather than read back from
# the ledger. Each EUR account starts with 1000.00, gamma/usd with 50.00 USD; ok-i moves
# (i + 1).25 EUR along ROUTES[i % 3]; the four refusals move nothing:
#   a1: 1000.00 - (1.25 + 4.25 + 7.25 + 10.25) =  977.00    b1: 1000.00 + 23.00 = 1023.00
#   b2: 1000.00 - (2.25 + 5.25 + 8.25 + 11.25) =  973.00    g1: 1000.00 + 27.00 - 31.00 = 996.00
#   a2: 1000.00 + (3.25 + 6.25 + 9.25 + 12.25) = 1031.00
ACCOUNTS = {  # (participant, account, currency, balance, pending_debits, pending_credits, closed)
    "alpha.acct.a1":  ("alpha", "a1",  "EUR",  "977.00", "0.00", "0.00", False),
    "alpha.acct.a2":  ("alpha", "a2",  "EUR", "1031.00", "0.00", "0.00", False),
    "beta.acct.b1":   ("beta",  "b1",  "EUR", "1023.00", "0.00", "0.00", False),
    "beta.acct.b2":   ("beta",  "b2",  "EUR",  "973.00", "0.00", "0.00", False),
    "gamma.acct.g1":  ("gamma", "g1",  "EUR",  "996.00", "0.00", "0.00", False),
    "gamma.acct.usd": ("gamma", "usd", "USD",   "50.00", "0.00", "0.00", False),
}  # fmt: skip
REFUSED = {  # all from alpha: id -> (receiving bank, amount, cause, detail)
    "no-funds": ("beta", "5000.00", "INSUFFICIENT_FUNDS",
                 "available 977.00 EUR is less than 5000.00"),  # a1 with ok-0, 3, 6, 9 reserved
    "no-acct": ("beta", "10.00", "UNKNOWN_ACCOUNT", "unknown account 'nope'"),
    "bad-ccy": ("gamma", "10.00", "CURRENCY_MISMATCH", "account 'usd' holds USD, not EUR"),
    "bad-amount": ("beta", "1.001", "INVALID_AMOUNT",
                   "amount '1.001' has 3 decimals; EUR allows 2"),
}  # fmt: skip


def both_records(tid: str, n: str, p: str, amount: str, *outcome: str | None) -> dict[str, tuple]:
    """A final transfer: SETTLED at the submitter, CONFIRMED at the receiver, with the same
    (outcome, cause, detail); a refused one is recorded by both too (PROTOCOL.md, section 8)."""
    return {
        f"{n}.out.{tid}": (n, "submitter", tid, amount, "EUR", "SETTLED", *outcome),
        f"{p}.in.{n}.{tid}": (p, "receiver", tid, amount, "EUR", "CONFIRMED", *outcome),
    }


def scenario_transfers() -> dict[str, tuple]:
    rows: dict[str, tuple] = {}
    for i in range(12):  # run_transfers' default count
        n, p = ROUTES[i % 3]
        rows |= both_records(f"ok-{i}", n, p, f"{i + 1}.25", "OK", None, "")
    for tid, (p, amount, cause, detail) in REFUSED.items():
        rows |= both_records(tid, "alpha", p, amount, "REJECTED", cause, detail)
    return rows


async def test_the_projection_shows_what_the_transfers_did_and_equals_the_ledger(
    bank: LiveBank, make_store
):
    await run_transfers(bank)
    async with projecting(bank, make_store()) as projector:
        await until_caught_up(bank, projector)
        projected = await projector.store.state()
        assert projected.accounts == ACCOUNTS
        assert {k: v[:9] for k, v in projected.transfers.items()} == scenario_transfers()
        await assert_projection_equals_state(bank, projector.store)
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
        await deliver_everything_again(projector)
        assert await projector.store.state() == before
    # And a projector whose consumer was deleted resumes from its database, not from scratch.
    await delete_consumers(bank.nc, name_of(projector.store), projector.source.streams)
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


async def test_text_sent_with_a_nul_is_projected_and_stalls_nothing(bank: LiveBank, make_store):
    # SQL text cannot hold NUL (PostgreSQL refuses it): the projector must not retry forever.
    bank.start_all()
    await bank.submit(
        transfer("nul-comment", "alpha/a1", "beta/b1", "1.00", comment="a\x00b"),
        transfer("nul-amount", "alpha/a1", "beta/b1", "1\x00"),
    )
    final = await bank.wait("alpha", ["nul-comment", "nul-amount"])
    assert final["nul-comment"].outcome is Outcome.OK
    assert final["nul-amount"].cause is RejectionCause.INVALID_AMOUNT
    async with projecting(bank, make_store()) as projector:
        await until_caught_up(bank, projector)
        await assert_projection_equals_state(bank, projector.store)
        projected = await projector.store.state()
    assert projected.transfers["alpha.out.nul-amount"][3] == "1\ufffd"  # amount, as recorded
    assert projected.transfers["alpha.out.nul-comment"][5] == "SETTLED"


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
    assert projected.accounts == of_beta(ACCOUNTS)
    assert {k: v[:9] for k, v in projected.transfers.items()} == of_beta(scenario_transfers())
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
    assert projected.accounts == of_beta(ACCOUNTS)
    assert {k: v[:9] for k, v in projected.transfers.items()} == of_beta(scenario_transfers())
