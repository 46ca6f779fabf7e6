"""The shared store's projection, the same contract as the independent store's
(test_projections.py) on PostgreSQL and SQLite: the same tables and keys, the balances and
outcomes the transfers imply, equal to the shared store's state (I6), events delivered again
change nothing, a participant's own projection, and I6 catches a row that is wrong."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from eventsource.adapters.views import kv_revisions
from eventsource.core.shared.layout import SHARED_BUCKET, SHARED_STREAM
from eventsource.services.shared.client import submit_shared, wait_decided
from projections.compare import differences_once_caught_up
from projections.consumers import delete_consumers
from projections.postgres import PostgresDb
from projections.shared.source import SharedSource
from projections.sqlite import SqliteDb
from projections.store import ProjectionDb
from tests.integration.live_bank import transfer
from tests.integration.projecting import (
    ROUTES,
    deliver_everything_again,
    name_of,
    of_beta,
    projecting,
    until_caught_up,
)
from tests.integration.projection_state import ACCOUNT_FIELDS
from tests.integration.shared_bank import SharedBank, shared_bank

# Worked out by hand: each EUR account starts with 1000.00, gamma/usd with 50.00 USD; ok-i moves
# (i + 1).25 EUR along ROUTES[i % 3] (a1->b1, b2->g1, g1->a2); the refusals move nothing.
ACCOUNTS = {
    "alpha.acct.a1":  ("alpha", "a1",  "EUR",  "994.50", "0.00", "0.00", False),
    "alpha.acct.a2":  ("alpha", "a2",  "EUR", "1009.50", "0.00", "0.00", False),
    "beta.acct.b1":   ("beta",  "b1",  "EUR", "1005.50", "0.00", "0.00", False),
    "beta.acct.b2":   ("beta",  "b2",  "EUR",  "992.50", "0.00", "0.00", False),
    "gamma.acct.g1":  ("gamma", "g1",  "EUR",  "998.00", "0.00", "0.00", False),
    "gamma.acct.usd": ("gamma", "usd", "USD",   "50.00", "0.00", "0.00", False),
}  # fmt: skip
OK_COUNT = 6
DEBTOR = {"alpha": "a1", "beta": "b2", "gamma": "g1"}  # the accounts ROUTES move money from
CREDITOR = {"beta": "b1", "gamma": "g1", "alpha": "a2"}  # and to
REFUSED = {  # all from alpha/a1: id -> (creditor, amount, cause)
    "no-funds": ("beta/b1", "5000.00", "INSUFFICIENT_FUNDS"),
    "no-acct": ("beta/nope", "10.00", "UNKNOWN_ACCOUNT"),
    "bad-ccy": ("gamma/usd", "10.00", "CURRENCY_MISMATCH"),
}


async def run_shared_transfers(nc) -> None:
    for i in range(OK_COUNT):
        n, p = ROUTES[i % 3]
        request = transfer(f"ok-{i}", f"{n}/{DEBTOR[n]}", f"{p}/{CREDITOR[p]}", f"{i + 1}.25")
        await submit_shared(nc, n, [request])
        assert (await wait_decided(nc, n, [f"ok-{i}"]))[f"ok-{i}"].outcome.value == "OK"
    refused = [transfer(t, "alpha/a1", c, amount) for t, (c, amount, _) in REFUSED.items()]
    await submit_shared(nc, "alpha", refused)
    decided = await wait_decided(nc, "alpha", list(REFUSED))
    assert {t: s.cause and s.cause.value for t, s in decided.items()} == {
        t: cause for t, (_, _, cause) in REFUSED.items()
    }


@contextlib.asynccontextmanager
async def transferred(cluster) -> AsyncIterator[SharedBank]:
    """The shared bank with its services running, after run_shared_transfers."""
    async with shared_bank(cluster) as bank:
        for p in ("alpha", "beta", "gamma"):
            bank.start(p)
        await run_shared_transfers(bank.nc)
        yield bank


def rows_by_hand() -> dict[str, tuple]:
    """(participant, side, id, amount, currency, phase, outcome, cause) of each row: an OK
    transfer is the submitter's SETTLED row and the receiver's CONFIRMED one; a REJECTED one
    never reached the receiver, so only its submitter has a row."""
    rows: dict[str, tuple] = {}
    for i in range(OK_COUNT):
        n, p, tid, amount = *ROUTES[i % 3], f"ok-{i}", f"{i + 1}.25"
        rows[f"{n}.out.{tid}"] = (n, "submitter", tid, amount, "EUR", "SETTLED", "OK", None)
        rows[f"{p}.in.{n}.{tid}"] = (p, "receiver", tid, amount, "EUR", "CONFIRMED", "OK", None)
    for tid, (_, amount, cause) in REFUSED.items():
        rows[f"alpha.out.{tid}"] = ("alpha", "submitter", tid, amount, "EUR", "SETTLED",
                                    "REJECTED", cause)  # fmt: skip
    return rows


async def shared_kv_rows(nc) -> tuple[dict, dict]:
    """The rows the shared store's state implies, read here as plain JSON from its KV keys (not
    through natsbank's decoders nor projections/shared, so a mistake there cannot hide here)."""
    accounts: dict[str, tuple] = {}
    transfers: dict[str, tuple] = {}
    for key, (value, _) in (await kv_revisions(nc, SHARED_BUCKET)).items():
        owner, kind, name = key.split(".")
        state = json.loads(value)["state"]
        if kind == "acct":
            accounts[key] = tuple(state[field] for field in ACCOUNT_FIELDS)
            continue
        t = state["transfer"]
        what = (t["id"], t["amount"], t["currency"])
        decided = (state["outcome"], state.get("cause"), state.get("detail", ""))
        transfers[f"{owner}.out.{name}"] = (owner, "submitter", *what, "SETTLED", *decided)
        if state["outcome"] == "OK":
            p = t["creditor"]["participant"]
            transfers[f"{p}.in.{owner}.{name}"] = (p, "receiver", *what, "CONFIRMED", *decided)
    return accounts, transfers


async def assert_equals_shared_state(nc, store: ProjectionDb, participant: str | None = None):
    accounts, transfers = await shared_kv_rows(nc)
    if participant is not None:
        accounts, transfers = of_beta(accounts), of_beta(transfers)
    projected = await store.state()
    assert projected.accounts == accounts
    assert {k: v[:9] for k, v in projected.transfers.items()} == transfers
    for key, row in projected.transfers.items():  # SETTLED and CONFIRMED have their times
        assert row[9][1 if row[1] == "submitter" else 3] is not None, key


async def test_the_shared_projection_shows_what_the_transfers_did_and_equals_the_state(
    nats1, make_store
):
    async with (
        transferred(nats1) as bank,
        projecting(bank, make_store(), source=SharedSource()) as projector,
    ):
        await until_caught_up(bank, projector)
        projected = await projector.store.state()
        assert projected.accounts == ACCOUNTS
        assert {k: v[:8] for k, v in projected.transfers.items()} == rows_by_hand()
        await assert_equals_shared_state(bank.nc, projector.store)
        assert [p.stream for p in await projector.store.positions()] == [SHARED_STREAM]
        found = await differences_once_caught_up(
            bank.nc, SharedSource(), projector.store, patience=0
        )
        assert found == []


async def test_shared_events_delivered_again_change_nothing(nats1, make_store):
    async with transferred(nats1) as bank:
        async with projecting(bank, make_store(), source=SharedSource()) as projector:
            await until_caught_up(bank, projector)
            before = await projector.store.state()
            await deliver_everything_again(projector)
            assert await projector.store.state() == before
        # A projector whose consumer was deleted resumes from its database, not from scratch.
        await delete_consumers(bank.nc, name_of(projector.store), [SHARED_STREAM])
        async with projecting(bank, make_store(), source=SharedSource()) as again:
            await until_caught_up(bank, again)
            assert again.stats.applied == 0
            assert await again.store.state() == before


async def test_a_participant_s_shared_projection_holds_its_own_rows_and_credits(
    nats1, tmp_path: Path
):
    async with transferred(nats1) as bank:
        store = SqliteDb(tmp_path / "beta-only", "beta")
        source = SharedSource("beta")
        async with projecting(bank, store, name="sqlite_beta", source=source) as projector:
            await until_caught_up(bank, projector)
            await assert_equals_shared_state(bank.nc, store, "beta")
            projected = await store.state()
    assert projected.accounts == of_beta(ACCOUNTS)
    mine = {k: v[:8] for k, v in projected.transfers.items()}
    assert mine == of_beta(rows_by_hand())
    assert {v[1] for v in mine.values()} == {"submitter", "receiver"}  # sent, and credited
    assert [p.name for p in (tmp_path / "beta-only").glob("*.sqlite")] == ["beta.sqlite"]


async def test_i6_names_a_wrong_row_of_the_shared_projection(nats1, make_store):
    async with transferred(nats1) as bank:
        async with projecting(bank, make_store(), source=SharedSource()) as projector:
            await until_caught_up(bank, projector)
        store = make_store()
        await store.open()
        try:
            await tamper(store)
            found = await differences_once_caught_up(bank.nc, SharedSource(), store, patience=0)
        finally:
            await store.close()
    assert len(found) == 3, found
    assert found[0].startswith("account beta.acct.b1: projection ('beta', 'b1', 'EUR', '1.00'")
    assert found[1] == "transfer alpha.in.gamma.ok-2 is missing from the projection"
    assert found[2] == "transfer alpha.out.no-funds: projection " + (
        "('alpha', 'submitter', 'no-funds', '5000.00', 'EUR', 'SETTLED', 'OK', None, '') != "
        "state ('alpha', 'submitter', 'no-funds', '5000.00', 'EUR', 'SETTLED', 'REJECTED', "
        "'INSUFFICIENT_FUNDS', 'available 994.50 EUR is less than 5000.00')"
    )


async def tamper(store: ProjectionDb) -> None:
    """A wrong balance, a lost receiver row, and a refused transfer shown as OK."""
    statements = [
        "UPDATE accounts SET balance = '1.00' WHERE key = 'beta.acct.b1'",
        "DELETE FROM transfers WHERE key = 'alpha.in.gamma.ok-2'",
        "UPDATE transfers SET outcome = 'OK', cause = NULL, detail = '' "
        "WHERE key = 'alpha.out.no-funds'",
    ]
    if isinstance(store, PostgresDb):
        for sql in statements:
            await store.conn.execute(sql)
        return
    for db in store._dbs.values():
        for sql in statements:
            await db.execute(sql)
