"""A service trusts an account snapshot only if its own fold of the entries reproduces it
(issue 13): the pure fold and comparison, core/snapshot_check.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.account import Account, EntryKind
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountEvent,
    AccountOpened,
    AccountSnapshot,
    Entry,
)
from eventsource.core.money import format_amount
from eventsource.core.shared.layout import apply_shared_entry
from eventsource.core.snapshot_check import AccountRefold, snapshot_difference

K = EntryKind
KEY = "bank-a.acct.a1"
EMPTY = Account("bank-a", "a1", "EUR")


def opened() -> AccountOpened:
    return AccountOpened(state=AccountSnapshot.of(EMPTY), at=0)


def changed(after: Account, *entries: tuple[EntryKind, str, int]) -> AccountChanged:
    written = [Entry(kind, ref, format_amount(minor, "EUR")) for kind, ref, minor in entries]
    return AccountChanged(state=AccountSnapshot.of(after), at=0, entries=written)


def history(*steps: tuple[EntryKind, str, int]) -> tuple[list[AccountEvent], Account]:
    """Honest events: each entry applied, its snapshot the state after it."""
    events: list[AccountEvent] = [opened()]
    account = EMPTY
    for kind, ref, minor in steps:
        account = account.apply(kind, minor)
        events.append(changed(account, (kind, ref, minor)))
    return events, account


def verdict(events: list[AccountEvent], refold: AccountRefold | None = None) -> str | None:
    refold = refold or AccountRefold(KEY)
    for seq, event in enumerate(events, start=1):
        refold.add(event, seq)
    return refold.verdict(events[-1])


HONEST = [
    (K.FUNDED, "F1", 100_00),
    (K.RESERVED, "T1", 30_00),
    (K.CREDIT_PENDING, "T2", 5_00),
    (K.DEBITED, "T1", 30_00),
    (K.CREDITED, "T2", 5_00),
    (K.RESERVED, "T3", 10_00),
    (K.VOIDED, "T3", 10_00),
]


def test_an_honest_history_folds_to_its_last_snapshot() -> None:
    events, _ = history(*HONEST)
    assert verdict(events) is None


def test_an_opened_account_alone_is_empty() -> None:
    assert verdict([opened()]) is None
    rich = AccountOpened(state=AccountSnapshot.of(replace(EMPTY, balance=5)), at=0)
    assert verdict([rich]) == "its snapshot says balance 0.05, its entries fold to balance 0.00"


def test_a_possible_snapshot_the_entries_do_not_add_up_to_is_named() -> None:
    events, account = history((K.FUNDED, "F1", 100_00))
    forged = changed(replace(account, balance=10_000_00))  # no entry, a richer snapshot
    assert verdict([*events, forged]) == (
        "its snapshot says balance 10000.00, its entries fold to balance 100.00"
    )


def test_an_entry_whose_snapshot_overstates_it_is_caught() -> None:
    events, account = history((K.FUNDED, "F1", 100_00))
    funded = account.apply(K.FUNDED, 1_00)
    forged = changed(replace(funded, balance=funded.balance + 9_900_00), (K.FUNDED, "F2", 1_00))
    assert "balance 10001.00, its entries fold to balance 101.00" in (
        verdict([*events, forged]) or ""
    )


def test_a_forged_snapshot_in_the_middle_shows_in_every_later_one() -> None:
    events, account = history((K.FUNDED, "F1", 100_00))
    rich = replace(account, balance=1_000_00)
    later = rich.apply(K.FUNDED, 1_00)  # an honest-looking entry on top of the forgery
    forged = [changed(rich), changed(later, (K.FUNDED, "F2", 1_00))]
    assert verdict([*events, *forged]) == (
        "its snapshot says balance 1001.00, its entries fold to balance 101.00"
    )
    spent = rich.apply(K.RESERVED, 500_00)  # spending the forged money breaks a rule
    problem = verdict([*events, changed(rich), changed(spent, (K.RESERVED, "T1", 500_00))])
    assert "its entry RESERVED T1 at sequence 4 breaks a rule: available 100.00" in (problem or "")


def test_pending_money_and_closing_are_folded_too() -> None:
    events, account = history((K.FUNDED, "F1", 10_00), (K.RESERVED, "T1", 4_00))
    lying = changed(replace(account, pending_debits=0))
    assert verdict([*events, lying]) == (
        "its snapshot says pending debits 0.00, its entries fold to pending debits 4.00"
    )
    closed = AccountClosed(state=AccountSnapshot.of(replace(account, closed=True)), at=0)
    assert verdict([*events, closed]) is None
    not_closed = AccountClosed(state=AccountSnapshot.of(account), at=0)
    assert verdict([*events, not_closed]) == (
        "its snapshot says closed False, its entries fold to closed True"
    )


def test_another_accounts_name_or_currency_is_named() -> None:
    events, account = history((K.FUNDED, "F1", 10_00))
    renamed = changed(replace(account, account="a2"))
    assert verdict([*events, renamed]) == (
        "its snapshot says account a2, its entries fold to account a1"
    )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ((K.RESERVED, "T9", 50_00), "breaks a rule: available"),  # an overdraft
        ((K.FUNDED, "F9", 0), "non-positive amount"),
    ],
)
def test_an_entry_the_rules_refuse_is_named(entry, says) -> None:
    events, account = history((K.FUNDED, "F1", 10_00))
    assert says in (verdict([*events, changed(account, entry)]) or "")


def test_a_negative_entry_amount_is_refused() -> None:
    events, account = history((K.FUNDED, "F1", 10_00))
    event = AccountChanged(
        state=AccountSnapshot.of(account), at=0, entries=[Entry(K.FUNDED, "F9", "-1.00")]
    )
    assert "non-positive amount -1.00" in (verdict([*events, event]) or "")


def test_a_second_opening_is_named() -> None:
    events, _ = history((K.FUNDED, "F1", 10_00))
    assert verdict([*events, opened()]) == "its account is opened again at sequence 3"


def test_a_carried_copy_changes_nothing() -> None:
    events, _ = history((K.FUNDED, "F1", 10_00))
    refold = AccountRefold(KEY)
    for seq, event in enumerate(events, start=1):
        refold.add(event, seq)
    refold.add(events[-1], 9, carried=True)  # the same FUNDED entry, copied forward
    assert refold.verdict(events[-1]) is None


def test_after_an_archive_cut_the_first_live_event_is_the_start() -> None:
    _, account = history(*HONEST)
    start = AccountChanged(state=AccountSnapshot.of(account), at=0, entries=[])
    after = account.apply(K.FUNDED, 1_00)
    assert verdict([start, changed(after, (K.FUNDED, "F2", 1_00))]) is None
    assert verdict([start, changed(replace(after, balance=1))]) is not None


def test_a_trusted_state_starts_the_fold_where_it_was() -> None:
    trusted = Account("bank-a", "a1", "EUR", balance=70_00)
    after = trusted.apply(K.RESERVED, 20_00)
    honest = [changed(after, (K.RESERVED, "T1", 20_00))]
    assert verdict(honest, AccountRefold.trusted(KEY, trusted)) is None
    forged = [changed(replace(after, balance=700_00), (K.RESERVED, "T1", 20_00))]
    assert "balance 700.00, its entries fold to balance 70.00" in (
        verdict(forged, AccountRefold.trusted(KEY, trusted)) or ""
    )


def test_the_shared_store_folds_postings_directly() -> None:
    funded = EMPTY.apply(K.FUNDED, 10_00)
    paid = replace(funded, balance=7_00)  # a shared-store debit: no pending step
    events = [
        opened(),
        changed(funded, (K.FUNDED, "F1", 10_00)),
        changed(paid, (K.DEBITED, "T", 3_00)),
    ]
    assert verdict(events, AccountRefold(KEY, apply_shared_entry)) is None
    reserved = [*events[:2], changed(funded, (K.RESERVED, "T", 3_00))]
    assert "has no place in the shared store" in (
        verdict(reserved, AccountRefold(KEY, apply_shared_entry)) or ""
    )


@settings(max_examples=100)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(K)), st.integers(min_value=1, max_value=10_000)),
        max_size=30,
    )
)
def test_any_history_the_rules_allow_folds_to_its_last_snapshot(steps) -> None:
    events: list[AccountEvent] = [opened()]
    account = EMPTY
    for kind, minor in steps:
        try:
            account = account.apply(kind, minor)
        except Exception:
            continue
        events.append(changed(account, (kind, "R", minor)))
    assert verdict(events) is None
    assert snapshot_difference(AccountSnapshot.of(account), account) is None
