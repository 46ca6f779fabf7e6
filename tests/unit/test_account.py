"""Account money, two-phase: reserve then post or void; credits stay pending until confirmed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.account import Account, EntryKind, snapshot_problem
from eventsource.core.errors import (
    AccountIsClosed,
    DomainError,
    InsufficientFunds,
    InvalidAmount,
    RejectionCause,
)
from eventsource.core.events import AccountSnapshot
from eventsource.core.money import MAX_MINOR

K = EntryKind


def funded(amount: int = 100_00, **changes) -> Account:
    return replace(Account("n", "alice", "EUR").apply(K.FUNDED, amount), **changes)


def test_funding_creates_posted_balance():
    assert funded(100_00) == Account("n", "alice", "EUR", balance=100_00)


def test_a_reservation_holds_money_without_moving_the_balance():
    account = funded(100_00).apply(K.RESERVED, 30_00)
    assert (account.balance, account.pending_debits, account.available) == (100_00, 30_00, 70_00)


def test_posting_a_reservation_debits_the_balance():
    account = funded(100_00).apply(K.RESERVED, 30_00).apply(K.DEBITED, 30_00)
    assert (account.balance, account.pending_debits, account.available) == (70_00, 0, 70_00)


def test_voiding_a_reservation_gives_the_money_back():
    account = funded(100_00).apply(K.RESERVED, 30_00).apply(K.VOIDED, 30_00)
    assert account == funded(100_00)


def test_a_pending_credit_is_not_spendable():
    account = funded(0).apply(K.CREDIT_PENDING, 50_00)
    assert (account.balance, account.pending_credits, account.available) == (0, 50_00, 0)
    with pytest.raises(InsufficientFunds):
        account.apply(K.RESERVED, 1)


def test_a_confirmed_credit_becomes_balance_and_can_be_spent():
    account = funded(0).apply(K.CREDIT_PENDING, 50_00).apply(K.CREDITED, 50_00)
    assert (account.balance, account.pending_credits) == (50_00, 0)
    assert account.apply(K.RESERVED, 50_00).available == 0


def test_the_whole_available_amount_can_be_reserved():
    assert funded(100_00).apply(K.RESERVED, 100_00).available == 0


def test_reserving_more_than_available_is_refused_as_insufficient_funds():
    account = funded(100_00).apply(K.RESERVED, 60_00)
    with pytest.raises(InsufficientFunds, match=r"available 40.00 EUR is less than 40.01") as no:
        account.apply(K.RESERVED, 40_01)
    assert no.value.cause is RejectionCause.INSUFFICIENT_FUNDS
    assert account.available == 40_00  # frozen: the refusal changed nothing


def test_an_empty_account_cannot_reserve_a_single_minor_unit():
    with pytest.raises(InsufficientFunds):
        Account("n", "alice", "EUR").apply(K.RESERVED, 1)


def test_a_closed_account_refuses_reservations():
    with pytest.raises(AccountIsClosed) as closed:
        funded(100_00, closed=True).apply(K.RESERVED, 1)
    assert closed.value.cause is RejectionCause.ACCOUNT_CLOSED


def test_a_closed_account_refuses_funding():
    with pytest.raises(AccountIsClosed):
        funded(100_00, closed=True).apply(K.FUNDED, 1)


def test_money_in_flight_still_settles_on_a_closed_account():
    reserved = funded(100_00).apply(K.RESERVED, 10_00).apply(K.CREDIT_PENDING, 5_00)
    closed = replace(reserved, closed=True)
    assert closed.apply(K.DEBITED, 10_00).balance == 90_00
    assert closed.apply(K.VOIDED, 10_00).available == 100_00
    assert closed.apply(K.CREDITED, 5_00).balance == 105_00


def test_a_balance_may_reach_the_int64_limit():
    assert funded(MAX_MINOR).balance == MAX_MINOR


def test_funding_past_the_int64_limit_is_refused():
    with pytest.raises(InvalidAmount, match="2\\^63-1"):
        funded(MAX_MINOR).apply(K.FUNDED, 1)


def test_a_pending_credit_past_the_int64_limit_is_refused():
    with pytest.raises(InvalidAmount):
        funded(MAX_MINOR - 10).apply(K.CREDIT_PENDING, 11)


def test_pending_credits_count_toward_the_limit():
    account = funded(MAX_MINOR - 10).apply(K.CREDIT_PENDING, 10)
    with pytest.raises(InvalidAmount):
        account.apply(K.CREDIT_PENDING, 1)
    with pytest.raises(InvalidAmount):
        account.apply(K.FUNDED, 1)


# A model of what an honest ledger does to one account: funding, reservations that are later
# posted or voided, credits that are later confirmed. Refused entries must change nothing.
operations = st.lists(
    st.tuples(
        st.sampled_from(["fund", "reserve", "post", "void", "pend", "credit"]),
        st.integers(min_value=1, max_value=2**62),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(operations)
def test_no_sequence_of_entries_makes_available_negative_or_the_balance_overflow(ops):
    account = Account("n", "alice", "EUR")
    reservations: list[int] = []
    credits: list[int] = []
    for op, amount in ops:
        before = account
        try:
            if op == "fund":
                account = account.apply(K.FUNDED, amount)
            elif op == "reserve":
                account = account.apply(K.RESERVED, amount)
                reservations.append(amount)
            elif op == "pend":
                account = account.apply(K.CREDIT_PENDING, amount)
                credits.append(amount)
            elif op in ("post", "void") and reservations:
                kind = K.DEBITED if op == "post" else K.VOIDED
                account = account.apply(kind, reservations.pop(amount % len(reservations)))
            elif op == "credit" and credits:
                account = account.apply(K.CREDITED, credits.pop(amount % len(credits)))
        except DomainError:
            assert account == before
        assert account.available >= 0
        assert account.pending_debits == sum(reservations)
        assert account.pending_credits == sum(credits)
        assert snapshot_problem(account, "n.acct.alice") is None  # a fold never looks forged
        assert 0 <= account.balance + account.pending_credits <= MAX_MINOR


@settings(max_examples=100)
@given(
    balance=st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    debits=st.integers(min_value=0, max_value=MAX_MINOR),
    credits=st.integers(min_value=0, max_value=MAX_MINOR),
    closed=st.booleans(),
    currency=st.sampled_from(["EUR", "JPY", "BHD", "CLF"]),
)
def test_an_account_snapshot_holds_the_exact_account(balance, debits, credits, closed, currency):
    account = Account("n", "alice", currency, balance, debits, credits, closed)
    assert AccountSnapshot.of(account).to_account() == account


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"account": "a2"}, "names account bank-a/a2"),
        ({"participant": "bank-b"}, "names account bank-b/a1"),
        ({"pending_credits": -1}, "negative"),
        ({"balance": 100, "pending_debits": 101}, "overdraft"),
        ({"balance": 2**63 - 1, "pending_credits": 1}, "2^63-1"),
    ],
)
def test_a_snapshot_no_fold_can_produce_is_named(changes, says) -> None:
    forged = replace(Account("bank-a", "a1", "EUR", balance=500), **changes)
    assert says in (snapshot_problem(forged, "bank-a.acct.a1") or "")


def test_every_state_a_fold_produces_passes_the_snapshot_check() -> None:
    account = Account("bank-a", "a1", "EUR")
    for kind, amount in [
        (EntryKind.FUNDED, 1000),
        (EntryKind.RESERVED, 1000),
        (EntryKind.CREDIT_PENDING, 5),
        (EntryKind.DEBITED, 400),
        (EntryKind.VOIDED, 600),
        (EntryKind.CREDITED, 5),
    ]:
        account = account.apply(kind, amount)
        assert snapshot_problem(account, "bank-a.acct.a1") is None
