"""State is the fold of events (I5): re-folding a ledger gives its state, and a ledger that
breaks a rule is reported, never silently folded."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.account import EntryKind
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import (
    AccountChanged,
    AccountOpened,
    AccountSnapshot,
    Entry,
    TransferSettled,
    account_event_decoder,
    encoder,
    transfer_event_decoder,
)
from eventsource.core.fold import Fold
from eventsource.core.model import Outcome
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from tests.unit.simulation import Network, fold_events, fold_network, request

ALICE, BOB = account_key("n", "alice"), account_key("p", "bob")
OUT, IN = outgoing_key("n", "t1"), incoming_key("p", "n", "t1")


@pytest.fixture(params=[Fold, CompactFold], ids=["full", "compact"])
def make_fold(request):
    """Every check runs on the full fold and on the compact one the audit uses."""
    return request.param


@pytest.fixture
def done(net: Network) -> Network:
    """The fixture network after one accepted, one declined and one refused transfer."""
    net.submit("n", request("t1", "30.00"), request("t2", "5.00", creditor=("p", "nobody")))
    net.submit("n", request("t3", "500.00"))
    net.drain()
    return net


def test_folding_a_ledger_gives_exactly_its_state(done):
    fold = fold_network(done)
    assert fold.problems == []
    states = {k: s for bank in done.banks.values() for k, (s, _) in bank.states.items()}
    assert {**fold.accounts, **fold.transfers} == states
    assert len(fold.transfers) == 6
    assert dict(fold.funded) == {"EUR": 100_00, "JPY": 5000}


def test_a_half_done_ledger_folds_too(net):
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    net.deliver_next()
    fold = fold_network(net)
    assert fold.problems == []
    assert fold.accounts[ALICE].pending_debits == 30_00
    assert fold.accounts[BOB].pending_credits == 30_00


def events_of(net: Network, bank: str) -> list[tuple[str, bytes]]:
    return list(net.bank(bank).events)


def last_event(events: list[tuple[str, bytes]], key: str) -> tuple[str, bytes]:
    return next(e for e in reversed(events) if e[0] == key)


def test_an_account_event_applied_twice_is_reported(done, make_fold):
    events = events_of(done, "p")
    events.append(last_event(events, BOB))
    problems = fold_events(events, make_fold()).problems
    assert any("applied twice (I3)" in p for p in problems)


def test_an_entry_that_breaks_an_account_rule_is_reported(net, make_fold):
    events = events_of(net, "p")
    bob = account_event_decoder.decode(last_event(events, BOB)[1]).state
    overdraft = AccountChanged(
        state=msgspec.structs.replace(bob, pending_debits="1.00"),
        entries=[Entry(EntryKind.RESERVED, "tx", "1.00")],
        at=0,
    )
    events.append((BOB, encoder.encode(overdraft)))
    problems = fold_events(events, make_fold()).problems
    assert any("broke a rule" in p for p in problems)


def test_a_snapshot_that_differs_from_its_entries_is_reported(net, make_fold):
    events = events_of(net, "n")
    alice = account_event_decoder.decode(last_event(events, ALICE)[1]).state
    wrong = AccountChanged(
        state=msgspec.structs.replace(alice, balance="99.00"),
        entries=[Entry(EntryKind.RESERVED, "tx", "1.00")],
        at=0,
    )
    events.append((ALICE, encoder.encode(wrong)))
    assert any("differs from the fold (I5)" in p for p in fold_events(events, make_fold()).problems)


def test_settling_twice_is_reported_as_an_illegal_transition(done, make_fold):
    events = events_of(done, "n")
    events.append(last_event(events, OUT))
    assert any("cannot take" in p for p in fold_events(events, make_fold()).problems)


def test_a_changed_outcome_is_reported(done, make_fold):
    events = events_of(done, "n")
    settled = transfer_event_decoder.decode(last_event(events, OUT)[1])
    flipped = TransferSettled(
        state=msgspec.structs.replace(settled.state, outcome=Outcome.REJECTED), at=0
    )
    events.append((OUT, encoder.encode(flipped)))
    assert any("outcome changed" in p for p in fold_events(events, make_fold()).problems)


def test_changed_content_under_the_same_key_is_reported(net, make_fold):
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    net.deliver_next()
    net.deliver_next()  # n settled: FundsReserved, then TransferSettled, on one key
    events = events_of(net, "n")
    index = max(i for i, (key, _) in enumerate(events) if key == OUT)
    settled = transfer_event_decoder.decode(events[index][1])
    tampered = msgspec.structs.replace(settled.state, digest="0" * 24)
    events[index] = (OUT, encoder.encode(TransferSettled(state=tampered, at=0)))
    assert any("content changed (I3)" in p for p in fold_events(events, make_fold()).problems)


def test_an_event_before_its_account_was_opened_is_reported(net, make_fold):
    events = [e for e in events_of(net, "n") if e[0] == ALICE]
    problems = fold_events(events[1:], make_fold()).problems
    assert any("before the account was opened" in p for p in problems)


def test_an_account_opened_twice_is_reported(net, make_fold):
    opened = AccountOpened(state=AccountSnapshot.of(net.bank("n").account("alice")), at=0)
    events = [*events_of(net, "n"), (ALICE, encoder.encode(opened))]
    assert any("opened twice" in p for p in fold_events(events, make_fold()).problems)


def test_the_compact_fold_keeps_what_the_audit_reads_of_each_record(done):
    full, compact = Fold(), CompactFold()
    for bank in done.banks.values():
        fold_events(bank.events, full)
        fold_events(bank.events, compact)
    assert compact.problems == full.problems == []
    assert compact.accounts == full.accounts and compact.funded == full.funded
    assert set(compact.transfers) == set(full.transfers)
    for key, state in full.transfers.items():
        mark = compact.transfers[key]
        assert (mark.side, mark.phase, mark.outcome, mark.final) == (
            state.side, state.phase, state.outcome, state.final,
        )  # fmt: skip
        assert (mark.debtor, mark.receiver, mark.currency) == (
            state.transfer.debtor.participant, state.transfer.creditor.participant,
            state.transfer.currency,
        )  # fmt: skip
    assert compact.transfers[OUT].minor == 30_00
