"""The give-up saga (DESIGN.md section 5), race by race: n gives up on a RESERVED transfer and
sends a CANCEL; whatever order the posting, the result and the CANCEL arrive in, both sides end
CANCELLED, money is conserved, and nothing is applied twice."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.account import EntryKind
from eventsource.core.errors import DeadLetterReason, ProtocolError
from eventsource.core.events import CancelRecorded, encoder, transfer_event_decoder
from eventsource.core.messages import Confirm, Confirms, Kind, Result, Results
from eventsource.core.model import Outcome
from eventsource.core.protocol import Phase, Step
from eventsource.core.saga import GiveUpReason
from eventsource.core.subjects import account_key, inbox_subject, incoming_key
from tests.unit.ledger_checks import (
    FinalityWatch,
    check_every_step,
    check_final_and_agreed,
    check_fold_equals_state,
    check_money_moved_once_or_not_at_all,
)
from tests.unit.records import incoming, money, outgoing
from tests.unit.simulation import Network, fold_events, fold_network, request
from tests.unit.two_banks import ALICE_FUNDS

FUNDING = {account_key("n", "alice"): ALICE_FUNDS, account_key("n", "carol"): 5000}
CANCELLED = (Phase.SETTLED, Outcome.CANCELLED)


def at_rest_cancelled(net: Network, transfer_id: str = "t1") -> None:
    """Both sides final and CANCELLED, no money moved, every invariant and the re-fold clean."""
    net.drain()
    n_side, p_side = outgoing(net, transfer_id), incoming(net, transfer_id)
    assert (n_side.phase, n_side.outcome, n_side.cause) == (*CANCELLED, None)
    assert p_side is not None, "p must know every ACKed id (I7)"
    assert (p_side.phase, p_side.outcome, p_side.cause) == (
        Phase.CONFIRMED,
        Outcome.CANCELLED,
        None,
    )
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    assert money(net.bank("p").account("bob")) == (0, 0, 0)
    assert net.bank("n").dead_letters == net.bank("p").dead_letters == []
    check_every_step(net, FinalityWatch())
    check_final_and_agreed(net)
    check_money_moved_once_or_not_at_all(net, FUNDING)
    check_fold_equals_state(net, fold_network(net))


def admitted(net: Network, amount: str = "30.00", **kw) -> None:
    net.submit("n", request("t1", amount, **kw))
    net.deliver_next()
    assert outgoing(net, "t1").phase is Phase.RESERVED and net.kinds() == ["posting"]


def pick(net: Network, kind: str) -> int:
    return net.kinds().index(kind)


def inject(net: Network, sender: str, recipient: str, kind: Kind, message: object) -> None:
    """Put a hand-made protocol message in flight, as a faulty or hostile peer could."""
    token = f"x{len(net.in_flight)}"
    subject = inbox_subject(net.bank(sender).partition, recipient, kind, sender, token)
    net.in_flight.append((subject, encoder.encode(message)))


def forged_cancel(net: Network) -> Confirms:
    state = outgoing(net, "t1")
    cancel = Confirm(
        id="t1", digest=state.digest, outcome=Outcome.CANCELLED, transfer=state.transfer
    )
    return Confirms(sender="n", confirms=[cancel])


def test_a_give_up_voids_the_reservation_at_once_and_sends_the_cancel(net):
    admitted(net)
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 30_00, 0)
    assert net.give_up("n", "t1", GiveUpReason.ATTEMPTS_EXHAUSTED) is True
    state = outgoing(net, "t1")
    assert (state.phase, state.outcome, state.final) == (*CANCELLED, True)
    assert state.detail == "gave up: ATTEMPTS_EXHAUSTED"
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    assert net.kinds() == ["posting", "confirm"]
    check_every_step(net, FinalityWatch())


def test_the_give_up_is_decided_once(net):
    admitted(net)
    assert net.give_up("n", "t1") is True
    events = len(net.bank("n").events)
    assert net.give_up("n", "t1") is False
    assert len(net.bank("n").events) == events and net.kinds() == ["posting", "confirm"]
    at_rest_cancelled(net)


def test_cancel_before_the_posting_leaves_a_tombstone_and_the_late_posting_is_cancelled(net):
    admitted(net)
    net.give_up("n", "t1")
    net.deliver([pick(net, "confirm")])  # the CANCEL overtakes the posting
    tombstone = incoming(net, "t1")
    assert (tombstone.phase, tombstone.outcome) == (Phase.CONFIRMED, Outcome.CANCELLED)
    assert tombstone.digest == outgoing(net, "t1").digest
    assert money(net.bank("p").account("bob")) == (0, 0, 0)
    ws = net.deliver([pick(net, "posting")])  # the late posting: answered from the tombstone
    assert [w.key for w in ws.writes() if w.key is not None] == []
    (result,) = [r for _, _, r in ws.outbound()]
    assert (result.outcome, result.cause) == (Outcome.CANCELLED, None)
    ws = net.deliver_next()  # a CANCELLED result acknowledges the CANCEL: n answers nothing
    assert ws.outbound() == []
    assert outgoing(net, "t1").outcome is Outcome.CANCELLED
    at_rest_cancelled(net)


def test_cancel_after_the_posting_voids_the_pending_credit(net):
    admitted(net)
    net.give_up("n", "t1")  # the deadline fires while the posting is still in flight
    net.deliver([pick(net, "posting")])  # p accepts: the credit is pending, result OK sent
    assert money(net.bank("p").account("bob")) == (0, 0, 30_00)
    net.deliver([pick(net, "confirm")])  # the CANCEL voids it
    state = incoming(net, "t1")
    assert (state.phase, state.outcome) == (Phase.CONFIRMED, Outcome.CANCELLED)
    assert money(net.bank("p").account("bob")) == (0, 0, 0)
    kinds = [k for (key, k, _), _ in net.bank("p").entries().items() if key.endswith(".bob")]
    assert kinds == [EntryKind.CREDIT_PENDING, EntryKind.CREDIT_VOIDED]
    at_rest_cancelled(net)


@pytest.mark.parametrize("first", ["result at n", "cancel at p"])
def test_a_cancel_crossing_the_ok_result_ends_cancelled_on_both_sides(net, first):
    admitted(net)
    net.deliver_next()  # p decided OK; the result is in flight to n
    assert incoming(net, "t1").outcome is Outcome.OK
    net.give_up("n", "t1")  # n's deadline fires before the result arrives
    assert sorted(net.kinds()) == ["confirm", "result"]
    if first == "result at n":
        ws = net.deliver([pick(net, "result")])
        assert outgoing(net, "t1").outcome is Outcome.CANCELLED, "a late OK changes nothing"
        (cancel,) = [item for _, _, item in ws.outbound()]
        assert (
            cancel.outcome is Outcome.CANCELLED and cancel.transfer == outgoing(net, "t1").transfer
        )
        assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    at_rest_cancelled(net)


def test_a_cancel_crossing_a_rejected_result_cancels_the_decline(net):
    admitted(net, creditor=("p", "nobody"))
    net.deliver_next()  # p declines UNKNOWN_ACCOUNT
    net.give_up("n", "t1")
    net.drain()
    state = incoming(net, "t1")
    assert (state.phase, state.outcome, state.cause) == (Phase.CONFIRMED, Outcome.CANCELLED, None)
    assert outgoing(net, "t1").outcome is Outcome.CANCELLED
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    check_final_and_agreed(net)
    check_fold_equals_state(net, fold_network(net))


@pytest.mark.parametrize("when", ["result", "confirm", "done"])
def test_a_give_up_after_the_result_is_refused(net, when):
    admitted(net)
    while net.in_flight and net.kinds()[0] != when:
        net.deliver_next()
    if when == "result":
        net.deliver_next()  # n has the result now
    before = dict(net.bank("n").states), list(net.in_flight)
    assert net.give_up("n", "t1") is False
    assert (dict(net.bank("n").states), net.in_flight) == before
    net.drain()
    assert outgoing(net, "t1").outcome is Outcome.OK
    assert net.bank("p").account("bob").balance == 30_00


def test_a_refused_transfer_cannot_be_given_up(net):
    net.submit("n", request("t1", "500.00"))
    net.deliver_next()
    assert net.give_up("n", "t1") is False
    net.drain()
    assert outgoing(net, "t1").outcome is Outcome.REJECTED


def test_giving_up_an_unknown_transfer_is_a_protocol_error(net):
    with pytest.raises(ProtocolError, match="unknown transfer"):
        net.give_up("n", "nope")


@pytest.mark.parametrize("outcome", [Outcome.OK, Outcome.REJECTED])
def test_a_cancel_after_the_confirm_is_refused_and_changes_nothing(net, outcome):
    creditor = ("p", "bob") if outcome is Outcome.OK else ("p", "nobody")
    net.submit("n", request("t1", "30.00", creditor=creditor))
    net.drain()
    state = incoming(net, "t1")
    assert (state.phase, state.outcome) == (Phase.CONFIRMED, outcome)
    before = dict(net.bank("p").states)
    inject(net, "n", "p", Kind.CONFIRM, forged_cancel(net))
    ws = net.deliver_next()
    assert ws.writes() == [] and net.bank("p").states == before
    (dead,) = net.bank("p").dead_letters
    assert dead.reason == DeadLetterReason.PROTOCOL_VIOLATION and "refused" in dead.detail
    check_final_and_agreed(net)


def test_a_cancel_must_carry_its_transfer_and_come_from_the_debtor(net):
    admitted(net)
    state = outgoing(net, "t1")
    bare = Confirm(id="t1", digest=state.digest, outcome=Outcome.CANCELLED)
    inject(net, "n", "p", Kind.CONFIRM, Confirms(sender="n", confirms=[bare]))
    inject(net, "n", "p", Kind.CONFIRM, msgspec.structs.replace(forged_cancel(net), sender="q"))
    net.deliver([1])
    net.deliver([1])
    assert [d.reason for d in net.bank("p").dead_letters] == [
        DeadLetterReason.PROTOCOL_VIOLATION
    ] * 2
    assert incoming(net, "t1") is None


def test_only_the_submitter_cancels_a_result_cancelled_for_a_reserved_record_is_refused(net):
    admitted(net)
    forged = Result(id="t1", digest=outgoing(net, "t1").digest, outcome=Outcome.CANCELLED)
    inject(net, "p", "n", Kind.RESULT, Results(sender="p", results=[forged]))
    net.deliver([1])
    assert outgoing(net, "t1").phase is Phase.RESERVED
    assert [d.reason for d in net.bank("n").dead_letters] == [DeadLetterReason.PROTOCOL_VIOLATION]


@pytest.mark.parametrize("race", ["before posting", "after posting", "crossing OK", "crossing REJ"])
def test_every_message_of_a_cancelled_transfer_delivered_again_changes_nothing(net, race):
    """Duplicates of each race: once at rest, a copy of any message ever sent is answered from
    the stored state, moves no money and leaves no dead letter."""
    admitted(net, creditor=("p", "nobody") if race == "crossing REJ" else ("p", "bob"))
    if race.startswith("crossing"):
        net.deliver_next()
    net.give_up("n", "t1")
    if race == "before posting":
        net.deliver([pick(net, "confirm")])
    sent = list(net.in_flight)
    while net.in_flight:
        sent.append(net.in_flight[0])
        net.deliver_next()
    states = {name: dict(bank.states) for name, bank in net.banks.items()}
    for message in sent:
        net.in_flight.append(message)
        net.drain()
    assert {name: dict(bank.states) for name, bank in net.banks.items()} == states
    at_rest_cancelled(net)


def test_an_ok_confirm_is_encoded_as_before_without_a_transfer():
    ok = Confirm(id="t1", digest="d", outcome=Outcome.OK)
    assert b"transfer" not in encoder.encode(ok)


def test_the_fold_refuses_a_cancel_step_that_does_not_match_the_decision(net):
    admitted(net)
    net.deliver_next()  # p decided OK: its CANCEL must void the credit (CreditCancelled)
    net.give_up("n", "t1")
    net.drain()
    events = list(net.bank("p").events)
    key = incoming_key("p", "n", "t1")
    i = max(i for i, (k, _) in enumerate(events) if k == key)
    assert type(transfer_event_decoder.decode(events[i][1])).__name__ == Step.CREDIT_CANCELLED
    wrong = CancelRecorded(state=transfer_event_decoder.decode(events[i][1]).state, at=0)
    events[i] = (key, encoder.encode(wrong))
    assert fold_events(events).problems == [f"{key}: CancelRecorded after a decided OK (I3)"]
