"""Exactly-once effect (I3): a duplicate changes nothing, a conflict is refused, a stranger
message is dead-lettered, and every batch guards each key once with the sequence it read."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.account import EntryKind
from eventsource.core.dispatch import apply_message
from eventsource.core.errors import DeadLetterReason, RejectionCause
from eventsource.core.events import AccountChanged, account_event_decoder
from eventsource.core.messages import Confirm, Confirms, Result, Results, inbox_decoder
from eventsource.core.model import Outcome
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from eventsource.core.workset import WorkSet
from tests.unit.simulation import Network, StaleGuard, request

OUT, IN = outgoing_key("n", "t1"), incoming_key("p", "n", "t1")
ALICE, BOB = account_key("n", "alice"), account_key("p", "bob")


def run_until(net: Network, kind: str) -> tuple[str, bytes]:
    """Deliver messages in order until the next one in flight is of `kind`; return a copy."""
    while net.kinds()[0] != kind:
        net.deliver_next()
    return net.in_flight[0]


def advance(net: Network, when: str) -> None:
    if when == "done":
        net.drain()
    else:
        run_until(net, when)


def redeliver(net: Network, message: tuple[str, bytes]) -> WorkSet:
    """Deliver a copy of an earlier message again, as JetStream may."""
    net.in_flight.insert(0, message)
    return net.deliver_next()


def state_writes(ws: WorkSet) -> list[str]:
    return [w.key for w in ws.writes() if w.key is not None]


def outbound(ws: WorkSet) -> list:
    return [inbox_decoder.decode(w.payload) for w in ws.writes() if w.key is None]


def account_events(ws: WorkSet) -> dict[str, AccountChanged]:
    return {
        w.key: account_event_decoder.decode(w.payload)
        for w in ws.writes()
        if w.key is not None and ".acct." in w.key
    }


# The next message in flight tells how far the transfer got: admitted, decided, settled, done.
PROGRESS = pytest.mark.parametrize(
    "when", ["posting", "result", "confirm", "done"], ids=["admitted", "decided", "settled", "done"]
)


@PROGRESS
def test_a_duplicate_submit_changes_nothing_at_any_time(net, when):
    net.submit("n", request("t1", "30.00"))
    submit = net.in_flight[0]
    advance(net, when)
    before = dict(net.bank("n").states)
    ws = redeliver(net, submit)
    assert ws.writes() == [] and ws.dead_letters == []
    assert net.bank("n").states == before
    net.drain()
    assert net.bank("n").account("alice").balance == 70_00
    assert net.bank("p").account("bob").balance == 30_00


def test_the_same_transfer_twice_in_one_message_is_admitted_once(net):
    net.submit("n", request("t1", "30.00"), request("t1", "30.0"))
    ws = net.deliver_next()
    assert state_writes(ws) == [OUT, ALICE]
    assert [e.kind for e in account_events(ws)[ALICE].entries] == [EntryKind.RESERVED]
    assert ws.dead_letters == []


@pytest.mark.parametrize("creditor", ["bob", "nobody"], ids=["accepted", "declined"])
@pytest.mark.parametrize("later", [False, True], ids=["before-confirm", "after-confirm"])
def test_a_duplicate_posting_is_answered_from_the_stored_decision(net, creditor, later):
    accepted = creditor == "bob"
    net.submit("n", request("t1", "30.00", creditor=("p", creditor)))
    posting = run_until(net, "posting")
    first = net.deliver_next()
    if later:
        net.drain()
    before = dict(net.bank("p").states)
    again = redeliver(net, posting)
    assert state_writes(again) == []
    assert outbound(again) == outbound(first)  # the same result, from the stored state
    assert net.bank("p").states == before
    net.drain()
    assert net.bank("p").account("bob").balance == (30_00 if accepted else 0)
    assert net.bank("n").account("alice").balance == (70_00 if accepted else 100_00)


@pytest.mark.parametrize("later", [False, True], ids=["before-confirm", "after-confirm"])
def test_a_duplicate_result_is_answered_with_the_confirm_again_and_moves_no_money(net, later):
    net.submit("n", request("t1", "30.00"))
    result = run_until(net, "result")
    first = net.deliver_next()
    if later:
        net.drain()
    before = dict(net.bank("n").states)
    again = redeliver(net, result)
    assert state_writes(again) == []
    assert outbound(again) == outbound(first)
    assert net.bank("n").states == before
    net.drain()
    assert net.bank("n").account("alice").balance == 70_00


def test_a_duplicate_confirm_changes_nothing(net):
    net.submit("n", request("t1", "30.00"))
    confirm = run_until(net, "confirm")
    net.drain()
    before = dict(net.bank("p").states)
    again = redeliver(net, confirm)
    assert again.writes() == [] and again.dead_letters == []
    assert net.bank("p").states == before
    assert net.bank("p").account("bob").balance == 30_00


@PROGRESS
def test_a_reused_id_with_other_content_is_an_id_conflict_and_changes_nothing(net, when):
    net.submit("n", request("t1", "30.00"))
    advance(net, when)
    before = dict(net.bank("n").states)
    net.submit("n", request("t1", "31.00"))
    ws = net.deliver([len(net.in_flight) - 1])
    assert ws.writes() == []
    assert [d.reason for d in ws.dead_letters] == [RejectionCause.ID_CONFLICT]
    assert b'"31.00"' in ws.dead_letters[0].payload
    assert net.bank("n").states == before


def test_an_id_conflict_inside_one_message_keeps_the_first_content(net):
    net.submit("n", request("t1", "30.00"), request("t1", "40.00"))
    ws = net.deliver_next()
    assert [d.reason for d in ws.dead_letters] == [RejectionCause.ID_CONFLICT]
    assert [e.amount for e in account_events(ws)[ALICE].entries] == ["30.00"]


def test_an_id_first_refused_is_still_taken(net):
    net.submit("n", request("t1", "1000.00"))
    net.drain()
    net.submit("n", request("t1", "10.00"))
    ws = net.deliver_next()
    assert [d.reason for d in ws.dead_letters] == [RejectionCause.ID_CONFLICT]
    assert net.bank("n").account("alice").pending_debits == 0


@pytest.mark.parametrize(
    "refused",
    [
        request("t1", "10.5", creditor=("n", "alice")),  # SAME_ACCOUNT
        request("t1", "10.5", debtor=("p", "bob")),  # not the submitter's account
        request("t1", "10.5", comment="c" * 281),  # comment too long
    ],
    ids=["same-account", "foreign-debtor", "long-comment"],
)
def test_a_refused_transfer_resubmitted_with_its_amount_spelled_otherwise_is_a_duplicate(
    net, refused
):
    net.submit("n", refused)
    net.drain()
    before = dict(net.bank("n").states)
    net.submit("n", msgspec.structs.replace(refused, amount="10.50"))
    ws = net.deliver_next()
    assert ws.dead_letters == []
    assert ws.writes() == []
    assert net.bank("n").states == before


def decide_alone(net: Network, participant: str, message) -> WorkSet:
    bank = net.bank(participant)
    ws = WorkSet(participant, bank.partition, dict(bank.states), net.known, 0, "x")
    apply_message(ws, message)
    return ws


@pytest.mark.parametrize(
    "stranger",
    [
        pytest.param(Result(id="t9", digest="d", outcome=Outcome.OK), id="unknown-transfer"),
        pytest.param(Result(id="t1", digest="0" * 24, outcome=Outcome.OK), id="wrong-digest"),
    ],
)
def test_a_result_for_an_unknown_transfer_or_with_a_wrong_digest_is_dead_lettered(net, stranger):
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    ws = decide_alone(net, "n", Results(sender="p", results=[stranger]))
    assert ws.writes() == []
    assert [d.reason for d in ws.dead_letters] == [DeadLetterReason.PROTOCOL_VIOLATION]


def test_a_result_from_another_participant_than_the_receiver_is_dead_lettered(net):
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    digest = net.bank("n").transfers()[OUT].digest
    ws = decide_alone(
        net, "n", Results(sender="q", results=[Result(id="t1", digest=digest, outcome=Outcome.OK)])
    )
    assert ws.writes() == [] and [d.reason for d in ws.dead_letters] == [
        DeadLetterReason.PROTOCOL_VIOLATION
    ]


def test_a_result_contradicting_the_final_outcome_is_dead_lettered(net):
    net.submit("n", request("t1", "30.00"))
    net.drain()
    digest = net.bank("n").transfers()[OUT].digest
    contrary = Result(id="t1", digest=digest, outcome=Outcome.REJECTED)
    ws = decide_alone(net, "n", Results(sender="p", results=[contrary]))
    assert ws.writes() == [] and [d.reason for d in ws.dead_letters] == [
        DeadLetterReason.PROTOCOL_VIOLATION
    ]


@pytest.mark.parametrize(
    ("transfer_id", "digest", "outcome"),
    [("t9", None, Outcome.OK), ("t1", "0" * 24, Outcome.OK), ("t1", None, Outcome.REJECTED)],
    ids=["unknown-transfer", "wrong-digest", "contradicting-outcome"],
)
def test_a_stranger_confirm_is_dead_lettered(net, transfer_id, digest, outcome):
    net.submit("n", request("t1", "30.00"))
    run_until(net, "result")
    real = net.bank("p").transfers()[IN].digest
    confirm = Confirm(id=transfer_id, digest=digest or real, outcome=outcome)
    ws = decide_alone(net, "p", Confirms(sender="n", confirms=[confirm]))
    assert ws.writes() == [] and [d.reason for d in ws.dead_letters] == [
        DeadLetterReason.PROTOCOL_VIOLATION
    ]
    assert net.bank("p").account("bob").balance == 0


def test_a_posting_whose_digest_does_not_match_its_transfer_is_dead_lettered(net):
    net.submit("n", request("t1", "30.00"))
    posting = inbox_decoder.decode(run_until(net, "posting")[1])
    item = msgspec.structs.replace(posting.postings[0], digest="0" * 24)
    ws = decide_alone(net, "p", msgspec.structs.replace(posting, postings=[item]))
    assert ws.writes() == [] and [d.reason for d in ws.dead_letters] == [
        DeadLetterReason.PROTOCOL_VIOLATION
    ]


def test_the_first_write_of_each_key_is_guarded_by_the_sequence_it_was_read_at(net):
    net.submit("n", request("t1", "30.00"))
    ws = net.decide("n", [net.in_flight[0][1]])
    writes = {w.key: w.expected for w in ws.writes() if w.key is not None}
    assert writes == {OUT: 0, ALICE: net.bank("n").states[ALICE][1]}
    assert net.bank("n").states[ALICE][1] > 0


def test_later_writes_of_a_key_in_the_same_batch_are_not_guarded_again(net):
    net.submit("n", request("t1", "30.00"))
    posting = run_until(net, "posting")
    p_before = dict(net.bank("p").states)
    confirm = run_until(net, "confirm")
    net.bank("p").states = p_before  # decide the posting and its confirm in one batch
    ws = net.decide("p", [posting[1], confirm[1]])
    guards = [(w.key, w.expected) for w in ws.writes() if w.key is not None]
    assert guards == [(IN, 0), (IN, None), (BOB, p_before[BOB][1])]
    entries = account_events(ws)[BOB].entries
    assert [e.kind for e in entries] == [EntryKind.CREDIT_PENDING, EntryKind.CREDITED]


def test_several_transfers_on_one_account_make_one_account_event_with_every_entry(net):
    net.submit("n", *(request(f"t{i}", "10.00") for i in range(3)))
    admitted = net.deliver_next()
    events = account_events(admitted)
    assert list(events) == [ALICE]
    assert [(e.kind, e.ref) for e in events[ALICE].entries] == [
        (EntryKind.RESERVED, f"t{i}") for i in range(3)
    ]
    assert events[ALICE].state.pending_debits == "30.00"
    assert [len(m.postings) for m in outbound(admitted)] == [3]  # one message, three transfers
    decided = net.deliver_next()
    assert list(account_events(decided)) == [BOB]
    assert len(account_events(decided)[BOB].entries) == 3
    net.drain()
    assert net.bank("p").account("bob").balance == 30_00


def test_a_stale_guess_that_a_record_is_new_is_refused_by_its_guard(net):
    net.submit("n", request("t1", "30.00"))
    posting = run_until(net, "posting")
    net.deliver_next()
    guessed = net.decide("p", [posting[1]], optimistic=True)
    assert guessed.changed_states  # decided again as if new: it would credit twice ...
    with pytest.raises(StaleGuard):
        net.bank("p").commit(guessed)  # ... but the commit is refused as a whole
    fresh = net.step("p", [posting[1]], optimistic=True)
    assert state_writes(fresh) == []
    assert net.bank("p").account("bob").pending_credits == 30_00
