"""I8, every movement has a cause (core/causes.py): an honest ledger folds without an I8
problem, and each entry without its cause is reported, on the full and the compact fold."""

from __future__ import annotations

import pytest

from eventsource.core.account import EntryKind
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import AccountChanged, AccountSnapshot, Entry, encoder
from eventsource.core.fold import Fold
from eventsource.core.money import format_amount
from eventsource.core.signing import Signer, funding_bytes, new_seed
from eventsource.core.subjects import account_key
from tests.unit import simulation
from tests.unit.simulation import Network, fold_events

ALICE, BOB = account_key("n", "alice"), account_key("p", "bob")
OPERATOR = Signer(new_seed())


@pytest.fixture(params=[Fold, CompactFold], ids=["full", "compact"])
def fold(request, net: Network):
    """The fold of a network after one accepted transfer t1 (30.00 from n/alice to p/bob)."""
    net.submit("n", simulation.request("t1", "30.00"))
    net.drain()
    folded = request.param()
    for bank in net.banks.values():
        fold_events(bank.events, folded)
    return folded


def forge(fold: Fold, key: str, entries: list[tuple[EntryKind, str, int]], **extra) -> list[str]:
    """Fold one AccountChanged with a consistent snapshot; the I8 problems it raised."""
    account = fold.accounts[key]
    written = []
    for kind, ref, minor in entries:
        account = account.apply(kind, minor)
        written.append(Entry(kind, ref, format_amount(minor, account.currency)))
    event = AccountChanged(state=AccountSnapshot.of(account), at=0, entries=written, **extra)
    before = len(fold.problems)
    fold_events([(key, encoder.encode(event))], fold)
    return [p for p in fold.problems[before:] if "(I8)" in p]


def test_an_honest_ledger_has_a_cause_for_every_entry(fold):
    assert fold.problems == []


def test_balanced_entries_with_no_transfer_are_theft(fold):
    taken = forge(fold, ALICE, [(EntryKind.RESERVED, "x", 10_00), (EntryKind.DEBITED, "x", 10_00)])
    given = forge(fold, BOB, [(EntryKind.CREDIT_PENDING, "n.x", 10_00)])
    assert len(taken) == 2 and all("no transfer record" in p for p in taken)
    assert len(given) == 1 and "no transfer record" in given[0]


def test_an_entry_that_does_not_match_its_record_is_reported(fold):
    # t1 is settled OK at n and confirmed OK at p.
    assert "does not follow" in forge(fold, ALICE, [(EntryKind.VOIDED, "t1", 0)])[0]
    assert "does not follow" in forge(fold, BOB, [(EntryKind.CREDIT_VOIDED, "n.t1", 0)])[0]
    assert "moves 1 minor units" in forge(fold, ALICE, [(EntryKind.DEBITED, "t1", 1)])[0]
    carol = account_key("n", "carol")
    assert "is not on the account" in forge(fold, carol, [(EntryKind.DEBITED, "t1", 30_00)])[0]


def test_funding_counts_only_with_the_operators_signature(fold):
    fold.operator_keys = (OPERATOR.public_key,)
    signature = OPERATOR.sign(funding_bytes("n", "alice", "EUR", "f-1", "5.00"))
    assert (
        forge(fold, ALICE, [(EntryKind.FUNDED, "f-1", 5_00)], signatures={"f-1": signature}) == []
    )
    unsigned = forge(fold, ALICE, [(EntryKind.FUNDED, "f-2", 5_00)])
    assert len(unsigned) == 1 and "no signature" in unsigned[0]
    moved = forge(fold, BOB, [(EntryKind.FUNDED, "f-1", 5_00)], signatures={"f-1": signature})
    assert len(moved) == 1 and "does not verify" in moved[0]  # signed for alice, not bob
    stranger = Signer(new_seed()).sign(funding_bytes("n", "alice", "EUR", "f-3", "5.00"))
    forged = forge(fold, ALICE, [(EntryKind.FUNDED, "f-3", 5_00)], signatures={"f-3": stranger})
    assert len(forged) == 1


def test_without_operator_keys_funding_is_not_checked_and_with_none_registered_it_fails(fold):
    assert forge(fold, ALICE, [(EntryKind.FUNDED, "f-1", 1)]) == []  # a replay: not checked
    fold.operator_keys = ()
    assert "no operator key" in forge(fold, ALICE, [(EntryKind.FUNDED, "f-2", 1)])[0]
