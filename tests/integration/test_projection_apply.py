"""A store's `apply`, against a real PostgreSQL (one statement with array parameters) and real
SQLite files (one transaction per file on its own thread): a batch lands whole, with exact
amounts and times, and what is at or below the stored position changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from projections.model import AccountRow, LedgerEvent, TransferRow
from projections.store import ProjectionDb

STREAM = "KV_ledger_0"
T0 = 1_764_500_000_123  # unix ms, not a whole second: times must come back to the millisecond


def account(seq: int, key: str, balance: str, pending: str = "0.00") -> LedgerEvent:
    participant, _, name = key.split(".")
    row = AccountRow(key, participant, name, "EUR", balance, pending, "0.00", False, T0 + seq)
    return LedgerEvent(STREAM, seq, row)


def sent(seq: int, phase: str, outcome: str | None = None, detail: str = "") -> LedgerEvent:
    row = TransferRow("alpha.out.t1", "alpha", "submitter", "t1", "beta", "alpha/a1", "beta/b1",
                      "1.25", "EUR", "rent", phase, outcome, None, detail, T0 + seq)  # fmt: skip
    return LedgerEvent(STREAM, seq, row)


def received(seq: int, phase: str) -> LedgerEvent:
    row = TransferRow("beta.in.alpha.t1", "beta", "receiver", "t1", "alpha", "alpha/a1",
                      "beta/b1", "1.25", "EUR", "rent", phase, "ACCEPTED", None, "",
                      T0 + seq)  # fmt: skip
    return LedgerEvent(STREAM, seq, row)


@pytest.fixture
async def store(make_store: Callable[[], ProjectionDb]) -> AsyncIterator[ProjectionDb]:
    db = make_store()
    await db.open()
    yield db
    await db.close()


def sent_row(phase: str, outcome: str | None, times: tuple) -> tuple:
    return ("alpha", "submitter", "t1", "1.25", "EUR", phase, outcome, None, "", times)


async def test_a_batch_lands_whole_with_exact_amounts_and_times(store: ProjectionDb) -> None:
    batch = [
        account(1, "alpha.acct.a1", "1000.00", pending="1.25"),
        sent(2, "RESERVED"),
        received(3, "DECIDED"),
        account(4, "beta.acct.b1", "1001.25"),
        account(5, "alpha.acct.a1", "998.75"),
        sent(6, "SETTLED", "ACCEPTED"),
        received(7, "CONFIRMED"),
    ]
    assert await store.apply(STREAM, 7, batch) == 7
    state = await store.state()
    assert state.accounts == {
        "alpha.acct.a1": ("alpha", "a1", "EUR", "998.75", "0.00", "0.00", False),
        "beta.acct.b1": ("beta", "b1", "EUR", "1001.25", "0.00", "0.00", False),
    }
    assert state.transfers["alpha.out.t1"] == sent_row(
        "SETTLED", "ACCEPTED", (T0 + 2, T0 + 6, None, None)
    )
    assert state.transfers["beta.in.alpha.t1"][9] == (None, None, T0 + 3, T0 + 7)
    (position,) = await store.positions()
    assert (position.stream, position.seq, position.last_event_at) == (STREAM, 7, T0 + 7)


async def test_events_at_or_below_the_stored_position_change_nothing(store: ProjectionDb) -> None:
    assert await store.apply(STREAM, 2, [sent(1, "RESERVED"), account(2, "alpha.acct.a1", "5.00")])
    # Delivered again with the next events (a rewind to an older position): 1 and 2 are applied
    # already; here they carry other values, which must not show.
    again = [sent(1, "SETTLED", "REJECTED", "not applied"), account(2, "alpha.acct.a1", "9.99")]
    assert await store.apply(STREAM, 3, [*again, sent(3, "SETTLED", "ACCEPTED")]) == 1
    state = await store.state()
    assert state.accounts["alpha.acct.a1"][3] == "5.00"
    assert state.transfers["alpha.out.t1"] == sent_row(
        "SETTLED", "ACCEPTED", (T0 + 1, T0 + 3, None, None)
    )
    assert await store.apply(STREAM, 3, [sent(3, "SETTLED", "REJECTED", "twice")]) == 0
    assert (await store.state()) == state
    assert [p.seq for p in await store.positions()] == [3]


async def test_a_phase_time_once_set_stays_across_batches(store: ProjectionDb) -> None:
    await store.apply(STREAM, 1, [sent(1, "RESERVED")])
    await store.apply(STREAM, 2, [sent(2, "SETTLED", "ACCEPTED")])
    times = (await store.state()).transfers["alpha.out.t1"][9]
    assert times == (T0 + 1, T0 + 2, None, None)


async def test_a_big_batch_is_written_in_one_go(store: ProjectionDb) -> None:
    keys = 3_000
    batch = [account(seq, f"alpha.acct.n{seq}", f"{seq}.{seq % 100:02d}") for seq in range(1, keys)]
    batch.append(account(keys, "alpha.acct.n1", "12345678901234567.89"))  # the last one wins
    assert await store.apply(STREAM, keys, batch) == keys
    accounts = (await store.state()).accounts
    assert len(accounts) == keys - 1
    assert accounts["alpha.acct.n1"][3] == "12345678901234567.89"
    assert accounts["alpha.acct.n2999"][3] == "2999.99"
