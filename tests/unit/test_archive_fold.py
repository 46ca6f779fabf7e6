"""Folding from an archive cut (core/archive_fold.py, core/archive_cut.py): a ledger folded in
two stretches, the second seeded with the first's snapshot, is the ledger folded whole; a
carried event changes nothing and a wrong one is reported; what an archive run keeps live and
what it purges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.archive_cut import (
    ConsumerFloor,
    cut_sequence,
    group_ends,
    subjects_overlap,
)
from eventsource.core.archive_fold import CutFold
from eventsource.core.archive_head import Totals, decode_snapshot, encode_snapshot
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import AccountSnapshot, account_event_decoder, encoder
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from tests.unit.simulation import Network, fold_events, request
from tests.unit.two_banks import two_banks

ALICE = account_key("n", "alice")


def busy_network() -> Network:
    """Some transfers done, one declined, one refused, two left half-way (in flight)."""
    net = two_banks()
    net.submit("n", request("t1", "30.00"), request("t2", "5.00", creditor=("p", "nobody")))
    net.submit("n", request("t3", "500.00"), request("t4", "7.00"))
    net.drain()
    net.submit(
        "n",
        request("t5", "11.00"),
        request("t6", "300", currency="JPY", debtor=("n", "carol"), creditor=("p", "yuki")),
    )
    net.deliver_next()
    net.deliver_next()
    return net


def ledger(net: Network) -> list[tuple[str, bytes]]:
    return [event for bank in net.banks.values() for event in bank.events]


def fold_in_two(events: list[tuple[str, bytes]], cut: int) -> tuple[CutFold, CutFold]:
    first = CutFold()
    for seq, (key, data) in enumerate(events[:cut], start=1):
        first.add(key, data, seq)
    snapshot = decode_snapshot(encode_snapshot(first.snapshot()))  # as stored and read back
    second = CutFold.seeded_with(snapshot)
    for seq, (key, data) in enumerate(events[cut:], start=cut + 1):
        second.add(key, data, seq)
    return first, second


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_ledger_folded_from_any_cut_is_the_ledger_folded_whole(data):
    events = ledger(busy_network())
    cut = data.draw(st.integers(0, len(events)))
    whole = fold_events(events, CompactFold())
    first, second = fold_in_two(events, cut)
    assert first.fold.problems == [] and second.fold.problems == []
    assert second.fold.accounts == whole.accounts
    live = {k: m for k, m in whole.transfers.items() if k in second.fold.transfers}
    assert {k: (m.phase, m.outcome) for k, m in second.fold.transfers.items()} == {
        k: (m.phase, m.outcome) for k, m in live.items()
    }
    archived = Totals().plus(
        dict(first.fold.funded), dict(first.fold.settled), dict(first.fold.confirmed)
    )
    both = archived.plus(
        dict(second.fold.funded), dict(second.fold.settled), dict(second.fold.confirmed)
    )
    assert both.funded == dict(whole.funded)
    assert both.settled == dict(whole.settled) and both.confirmed == dict(whole.confirmed)


def test_money_in_flight_is_settled_minus_confirmed():
    net = busy_network()
    fold = fold_events(ledger(net), CompactFold())
    in_flight = {c: fold.settled[c] - fold.confirmed.get(c, 0) for c in fold.settled}
    balances: dict[str, int] = {}
    for account in fold.accounts.values():
        balances[account.currency] = balances.get(account.currency, 0) + account.balance
    for currency, funded in fold.funded.items():
        assert balances[currency] + in_flight.get(currency, 0) == funded


def test_the_snapshot_keeps_accounts_and_unfinished_records_and_the_rest_is_final():
    net = busy_network()
    cut = CutFold()
    for seq, (key, data) in enumerate(ledger(net), start=1):
        cut.add(key, data, seq)
    kept = {entry.key for entry in cut.snapshot()}
    assert {account_key("n", a) for a in ("alice", "carol")} <= kept
    assert {outgoing_key("n", "t5"), outgoing_key("n", "t6")} <= kept  # in flight
    assert outgoing_key("n", "t1") not in kept and incoming_key("p", "n", "t1") not in kept
    assert set(cut.finals()) >= {outgoing_key("n", "t1"), incoming_key("p", "n", "t1")}
    assert not kept & set(cut.finals())


def test_a_carried_event_changes_nothing_and_a_wrong_one_is_reported():
    events = ledger(busy_network())
    first, second = fold_in_two(events, len(events))
    _, data, _ = first.latest[ALICE]
    second.add(ALICE, data, len(events) + 1, carried=True)
    assert second.fold.problems == []
    assert second.fold.account_seqs[ALICE] == len(events) + 1  # what KV must return now
    event = account_event_decoder.decode(data)
    forged = AccountSnapshot(**{**msgspec_dict(event.state), "balance": "999.00"})
    wrong = encoder.encode(type(event)(state=forged, at=event.at, **extra_fields(event)))
    second.add(ALICE, wrong, len(events) + 2, carried=True)
    assert any("carried account state differs" in p and "(I5)" in p for p in second.fold.problems)


def msgspec_dict(struct) -> dict:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}


def extra_fields(event) -> dict:
    return {f: getattr(event, f) for f in event.__struct_fields__ if f not in ("state", "at")}


def test_an_event_on_a_record_archived_final_is_reported():
    """A record that left the live ledger final must never move again: the seeded fold does
    not know it, so its next step is an illegal transition from nothing (I4)."""
    events = ledger(busy_network())
    out_t1 = outgoing_key("n", "t1")
    settled = [data for key, data in events if key == out_t1][-1]
    _, second = fold_in_two(events, len(events))
    second.add(out_t1, settled, len(events) + 1)
    assert any(out_t1 in p and "(I4)" in p for p in second.fold.problems)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("$KV.ledger_0.>", "$KV.ledger_0.>", True),
        ("$KV.ledger_0.>", "nb.0.to.bank-a.>", False),
        ("nb.0.to.bank-a.submit.>", "nb.0.to.bank-a.>", True),
        ("nb.0.to.bank-a.submit.>", "nb.0.to.bank-b.>", False),
        ("nb.0.to.*.posting.>", "nb.0.to.bank-b.>", True),
        ("nb.>", "nb.0.to.bank-b.>", True),
        (">", "$KV.ledger_0.>", True),
        ("a.b", "a.b.c", False),
        ("a.*", "a.b", True),
        ("a.>", "a", False),
    ],
)
def test_subjects_overlap(a, b, overlap):
    assert subjects_overlap(a, b) is overlap
    assert subjects_overlap(b, a) is overlap


def test_the_cut_never_passes_the_young_the_last_or_the_run_size():
    assert cut_sequence(start=10, by_time=50, last_seq=100, max_messages=1000) == 50
    assert cut_sequence(start=10, by_time=500, last_seq=100, max_messages=1000) == 101
    assert cut_sequence(start=10, by_time=500, last_seq=100, max_messages=20) == 30
    assert cut_sequence(start=10, by_time=3, last_seq=100, max_messages=20) == 10


def test_a_group_is_purged_only_below_what_its_consumers_acknowledged():
    groups = ["$KV.ledger_0.>", "nb.0.to.bank-a.>", "nb.0.to.bank-b.>"]
    consumers = [
        ConsumerFloor("submit_bank-a_0", ("nb.0.to.bank-a.submit.>",), 80),
        ConsumerFloor("inbox_bank-a_0", ("nb.0.to.bank-a.posting.>",), 120),
        ConsumerFloor("inbox_bank-b_0", ("nb.0.to.bank-b.posting.>",), 40),
        ConsumerFloor("projector_pg_0", ("$KV.ledger_0.>",), 200),
    ]
    ends = group_ends(groups, consumers, end=100)
    assert ends == {
        "$KV.ledger_0.>": (100, None),
        "nb.0.to.bank-a.>": (80, "submit_bank-a_0"),
        "nb.0.to.bank-b.>": (40, "inbox_bank-b_0"),
    }
    everything = group_ends(groups, [ConsumerFloor("mirror", (), 7)], end=100)
    assert set(everything.values()) == {(7, "mirror")}
