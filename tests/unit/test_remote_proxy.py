"""A receiver as a proxy to a remote bank (core/remote.py, core/remote_bank.py), driven purely:
the receiver never accepts without the remote bank's verdict, takes its decline as its own,
and relays every final outcome, which the remote bank applies once."""

from __future__ import annotations

import pytest

from eventsource.core.errors import ConfigError, RejectionCause
from eventsource.core.model import Outcome
from eventsource.core.protocol import Phase
from eventsource.core.remote import (
    AskedCredit,
    RelayedFinal,
    RemoteMode,
    RemotePlan,
    TimedOut,
    finals_of,
    parse_delay,
    remote_key,
)
from eventsource.core.remote_bank import AnswerFates, RemoteBook
from tests.unit.ledger_checks import check_fold_equals_state
from tests.unit.records import incoming, money, outgoing
from tests.unit.simulation import Network, fold_network, request
from tests.unit.two_banks import ALICE_FUNDS

SIMULATED = RemoteMode.SIMULATED


def credit(key: str = "n.t1") -> AskedCredit:
    return AskedCredit(key=key, account="bob", amount="30.00", currency="EUR")


def deliver_to_proxy(net: Network, book: RemoteBook) -> list[RelayedFinal]:
    """Deliver the next message to p as a proxy: decide, ask the book for what the decision
    awaits, decide again, relay the finals to the book, then commit (services/remote_proxy.py)."""
    subject, payload = net.in_flight.pop(0)
    if subject.split(".")[3] != "p":
        net.in_flight.insert(0, (subject, payload))
        net.deliver_next()
        return []
    verdicts: dict = {}
    ws = net.decide("p", [payload], remote=verdicts)
    if ws.awaiting_remote:
        verdicts = {k: book.answer(c) for k, c in ws.awaiting_remote.items()}
        ws = net.decide("p", [payload], remote=verdicts)
        assert not ws.awaiting_remote
    finals = finals_of(ws.changed_states)
    for final in finals:
        book.note(final)
    net.in_flight.extend(net.bank("p").commit(ws))
    return finals


def drain_through_proxy(net: Network, book: RemoteBook) -> None:
    for _ in range(100):
        if not net.in_flight:
            return
        deliver_to_proxy(net, book)
    raise AssertionError("the protocol did not come to rest")


def test_a_delay_is_a_fixed_number_or_a_range_of_ms():
    assert parse_delay("50") == (50.0, 50.0)
    assert parse_delay("20-80") == (20.0, 80.0)
    for bad in ("fast", "5-x", "nan"):
        with pytest.raises(ConfigError):
            RemotePlan(SIMULATED, *parse_delay(bad))


@pytest.mark.parametrize(
    "fields",
    [
        {"delay_ms_min": 80, "delay_ms_max": 20},
        {"delay_ms_min": -1, "delay_ms_max": 5},
        {"loss": 1.0},
        {"duplicate": 1.5},
        {"reject": -0.1},
        {"timeout_ms": 0},
        {"decide_after_ms": -5},
    ],
)
def test_a_plan_refuses_values_that_mean_nothing(fields):
    with pytest.raises(ConfigError):
        RemotePlan(SIMULATED, **fields)


def test_the_proxy_does_not_decide_a_posting_without_the_remote_verdict(net):
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    ws = net.decide("p", [net.in_flight[0][1]], remote={})
    assert list(ws.awaiting_remote) == [remote_key("n", "t1")]
    assert ws.writes() == []  # nothing recorded, nothing sent: the posting stays unacked


def test_a_remote_acceptance_runs_the_three_phases_and_the_remote_bank_applies_it_once(net):
    book = RemoteBook(RemotePlan(SIMULATED))
    net.submit("n", request("t1", "30.00"))
    drain_through_proxy(net, book)
    assert outgoing(net, "t1").outcome is Outcome.OK
    assert (incoming(net, "t1").phase, incoming(net, "t1").outcome) == (
        Phase.CONFIRMED,
        Outcome.OK,
    )
    assert money(net.bank("p").account("bob")) == (30_00, 0, 0)
    assert (book.decisions, book.applied, book.voided, book.contradictions) == (1, 1, 0, 0)
    check_fold_equals_state(net, fold_network(net))


def test_a_remote_decline_is_the_receivers_rejection_on_both_sides(net):
    book = RemoteBook(RemotePlan(SIMULATED, reject=1.0))
    net.submit("n", request("t1", "30.00"))
    drain_through_proxy(net, book)
    for side in (outgoing(net, "t1"), incoming(net, "t1")):
        assert (side.outcome, side.cause) == (Outcome.REJECTED, RejectionCause.REMOTE_REJECTED)
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    assert (book.applied, book.contradictions) == (0, 0)
    assert book.records[remote_key("n", "t1")].final is Outcome.REJECTED


def test_a_timed_out_remote_is_declined_and_told_so_and_its_late_acceptance_is_voided(net):
    book = RemoteBook(RemotePlan(SIMULATED))
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    key = remote_key("n", "t1")
    late = book.answer(credit(key))  # the remote bank accepted, but its answer never came
    ws = net.decide("p", [net.in_flight.pop(0)[1]], remote={key: TimedOut(key=key, waited_ms=9)})
    assert incoming_outcome(ws) == (Outcome.REJECTED, RejectionCause.REMOTE_TIMEOUT)
    net.in_flight.extend(net.bank("p").commit(ws))
    drain_through_proxy(net, book)
    assert late.accepted and book.records[key].final is Outcome.REJECTED
    assert (book.applied, book.voided, book.contradictions) == (0, 1, 0)
    assert outgoing(net, "t1").cause is RejectionCause.REMOTE_TIMEOUT


def incoming_outcome(ws) -> tuple:
    (state,) = [s for s in ws.changed_states.values() if getattr(s, "side", None) == "receiver"]
    return state.outcome, state.cause


def test_a_redelivered_posting_is_answered_from_the_record_without_asking_again(net):
    book = RemoteBook(RemotePlan(SIMULATED))
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    posting = net.in_flight[0]
    deliver_to_proxy(net, book)
    net.in_flight.insert(0, posting)  # the server delivers it again
    ws = net.decide("p", [posting[1]], remote={})
    assert not ws.awaiting_remote
    assert book.decisions == 1


def test_a_refused_transfer_and_a_local_decline_never_ask_the_remote_bank(net):
    net.submit("n", request("t1", "30.00", creditor=("p", "nobody")))
    net.submit("n", request("t2", "999.00"))  # n refuses it: INSUFFICIENT_FUNDS
    net.deliver_next()
    net.deliver_next()
    for expected in (RejectionCause.UNKNOWN_ACCOUNT, RejectionCause.INSUFFICIENT_FUNDS):
        ws = net.decide("p", [net.in_flight.pop(0)[1]], remote={})
        assert not ws.awaiting_remote
        assert incoming_outcome(ws) == (Outcome.REJECTED, expected)


def test_the_remote_bank_decides_a_key_once_and_answers_it_alike_after():
    book = RemoteBook(RemotePlan(SIMULATED, reject=0.5, seed=3))
    answers = [book.answer(credit(f"n.t{i % 20}")) for i in range(200)]
    assert book.decisions == 20 and book.asked_again == 180
    by_key: dict[str, set] = {}
    for answer in answers:
        by_key.setdefault(answer.key, set()).add(answer.accepted)
    assert all(len(seen) == 1 for seen in by_key.values())
    other_replica = RemoteBook(RemotePlan(SIMULATED, reject=0.5, seed=3))
    assert all(other_replica.answer(credit(k)).accepted in v for k, v in by_key.items())


def test_a_final_told_before_the_ask_answers_the_late_ask():
    book = RemoteBook(RemotePlan(SIMULATED))
    book.note(RelayedFinal(key="n.t1", outcome=Outcome.CANCELLED))
    assert not book.answer(credit("n.t1")).accepted
    assert (book.decisions, book.applied) == (0, 0)


def test_a_final_relayed_twice_is_applied_once_and_a_changed_final_is_flagged():
    book = RemoteBook(RemotePlan(SIMULATED))
    book.answer(credit("n.t1"))
    for _ in range(3):
        assert book.note(RelayedFinal(key="n.t1", outcome=Outcome.OK)).noted
    assert (book.applied, book.contradictions) == (1, 0)
    book.note(RelayedFinal(key="n.t1", outcome=Outcome.CANCELLED))
    assert book.contradictions == 1


def test_answers_are_lost_duplicated_and_delayed_as_planned():
    plan = RemotePlan(SIMULATED, delay_ms_min=20, delay_ms_max=80, loss=0.2, duplicate=0.1)
    fates = AnswerFates(plan, salt="x")
    draws = [fates.next() for _ in range(5000)]
    copies = [c for c, _ in draws]
    assert all(0.02 <= d <= 0.08 for _, d in draws)
    assert copies.count(0) == fates.counts["lost"] and 800 < copies.count(0) < 1200
    assert copies.count(2) == fates.counts["duplicated"] and 250 < copies.count(2) < 470
    quiet = AnswerFates(RemotePlan(SIMULATED, delay_ms_min=5, delay_ms_max=5))
    assert {quiet.next() for _ in range(100)} == {(1, 0.005)}
