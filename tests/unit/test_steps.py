"""The protocol between two participants, driven purely: send -> respond -> confirm.

Each delivery decodes one side's outbound writes and decides them in a new WorkSet of the
recipient, loaded from the states the previous commits changed (see tests/unit/simulation.py).
"""

from __future__ import annotations

import pytest

from eventsource.core.errors import RejectionCause
from eventsource.core.model import Outcome
from eventsource.core.protocol import Phase
from eventsource.core.subjects import outgoing_key
from tests.unit.records import incoming, money, outgoing
from tests.unit.simulation import Network, request
from tests.unit.two_banks import ALICE_FUNDS


def test_an_accepted_transfer_goes_through_every_phase_with_exact_balances(net):
    net.submit("n", request("t1", "30.00"))

    net.deliver_next()  # n admits: reserve and send the posting
    assert outgoing(net, "t1").phase is Phase.RESERVED
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 30_00, 0)
    assert money(net.bank("p").account("bob")) == (0, 0, 0)
    assert net.kinds() == ["posting"]

    net.deliver_next()  # p accepts: pending credit, respond OK
    decided = incoming(net, "t1")
    assert (decided.phase, decided.outcome) == (Phase.DECIDED, Outcome.OK)
    assert money(net.bank("p").account("bob")) == (0, 0, 30_00)
    assert net.bank("p").account("bob").available == 0
    assert net.kinds() == ["result"]

    net.deliver_next()  # n settles: post the debit, confirm
    settled = outgoing(net, "t1")
    assert (settled.phase, settled.outcome, settled.final) == (Phase.SETTLED, Outcome.OK, True)
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS - 30_00, 0, 0)
    assert money(net.bank("p").account("bob")) == (0, 0, 30_00)
    assert net.kinds() == ["confirm"]

    net.deliver_next()  # p confirms: the credit becomes balance
    confirmed = incoming(net, "t1")
    assert (confirmed.phase, confirmed.outcome, confirmed.final) == (
        Phase.CONFIRMED,
        Outcome.OK,
        True,
    )
    assert money(net.bank("p").account("bob")) == (30_00, 0, 0)
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS - 30_00, 0, 0)
    assert net.in_flight == []


def test_both_sides_keep_the_same_transfer_and_digest(net):
    net.submit("n", request("t1", "30"))
    net.drain()
    assert incoming(net, "t1").transfer == outgoing(net, "t1").transfer
    assert incoming(net, "t1").digest == outgoing(net, "t1").digest
    assert outgoing(net, "t1").transfer.amount == "30.00"


def test_the_receiver_can_spend_a_credit_only_after_the_confirm(net):
    net.open_account("p", "spend", "EUR")
    net.submit("n", request("t1", "30.00"))
    net.deliver_next()
    net.deliver_next()  # p decided OK; the credit is pending
    net.submit("p", request("back", "30.00", debtor=("p", "bob"), creditor=("n", "alice")))
    net.deliver([1])
    assert outgoing(net, "back", n="p").cause is RejectionCause.INSUFFICIENT_FUNDS
    net.drain()
    net.submit("p", request("back2", "30.00", debtor=("p", "bob"), creditor=("n", "alice")))
    net.drain()
    assert outgoing(net, "back2", n="p").outcome is Outcome.OK
    assert net.bank("n").account("alice").balance == ALICE_FUNDS
    assert net.bank("p").account("bob").balance == 0


def test_a_jpy_transfer_moves_whole_yen(net):
    net.submit(
        "n", request("y1", "1234", debtor=("n", "carol"), creditor=("p", "yuki"), currency="JPY")
    )
    net.drain()
    assert net.bank("n").account("carol").balance == 5000 - 1234
    assert net.bank("p").account("yuki").balance == 1234


def assert_rejected_on_both_sides(net: Network, transfer_id: str, cause: RejectionCause) -> None:
    n_side, p_side = outgoing(net, transfer_id), incoming(net, transfer_id)
    assert (n_side.phase, n_side.outcome, n_side.cause) == (
        Phase.SETTLED,
        Outcome.REJECTED,
        cause,
    )
    assert p_side is not None, "p must know every ACKed id (I7)"
    assert (p_side.phase, p_side.outcome, p_side.cause) == (
        Phase.CONFIRMED,
        Outcome.REJECTED,
        cause,
    )
    assert p_side.digest == n_side.digest


def assert_no_money_moved(net: Network) -> None:
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    assert money(net.bank("n").account("carol")) == (5000, 0, 0)
    assert money(net.bank("p").account("bob")) == (0, 0, 0)
    assert money(net.bank("p").account("yuki")) == (0, 0, 0)
    assert net.bank("n").dead_letters == net.bank("p").dead_letters == []


def test_insufficient_funds_is_refused_at_n_and_declined_by_p_with_the_same_cause(net):
    net.submit("n", request("t1", "100.01"))
    net.deliver_next()
    assert outgoing(net, "t1").cause is RejectionCause.INSUFFICIENT_FUNDS
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 0, 0)
    net.drain()
    assert_rejected_on_both_sides(net, "t1", RejectionCause.INSUFFICIENT_FUNDS)
    assert_no_money_moved(net)


def test_an_unknown_receiver_account_is_declined_by_p_and_the_reservation_voided(net):
    net.submit("n", request("t1", "40.00", creditor=("p", "nobody")))
    net.deliver_next()
    assert money(net.bank("n").account("alice")) == (ALICE_FUNDS, 40_00, 0)
    net.drain()
    assert_rejected_on_both_sides(net, "t1", RejectionCause.UNKNOWN_ACCOUNT)
    assert_no_money_moved(net)


def test_a_currency_the_receiver_account_does_not_hold_is_declined(net):
    net.submit("n", request("t1", "40.00", creditor=("p", "yuki")))
    net.drain()
    assert_rejected_on_both_sides(net, "t1", RejectionCause.CURRENCY_MISMATCH)
    assert_no_money_moved(net)


@pytest.mark.parametrize(
    ("amount", "currency", "cause"),
    [
        ("0.00", "EUR", RejectionCause.INVALID_AMOUNT),
        ("-5.00", "EUR", RejectionCause.INVALID_AMOUNT),
        (10.5, "EUR", RejectionCause.INVALID_AMOUNT),
        ("1.001", "EUR", RejectionCause.INVALID_AMOUNT),
        ("NaN", "EUR", RejectionCause.INVALID_AMOUNT),
        ("1.00", "XXX", RejectionCause.UNKNOWN_CURRENCY),
        ("1.00", "JPY", RejectionCause.INVALID_AMOUNT),
    ],
)
def test_an_invalid_amount_ends_rejected_on_both_sides(net, amount, currency, cause):
    net.submit("n", request("t1", amount, currency=currency))
    net.drain()
    assert_rejected_on_both_sides(net, "t1", cause)
    assert_no_money_moved(net)


def test_a_debtor_account_of_another_currency_is_refused_at_n(net):
    net.submit("n", request("t1", "100", debtor=("n", "carol")))
    net.drain()
    assert_rejected_on_both_sides(net, "t1", RejectionCause.CURRENCY_MISMATCH)
    assert_no_money_moved(net)


def test_an_unknown_debtor_account_is_refused_at_n(net):
    net.submit("n", request("t1", "1.00", debtor=("n", "ghost")))
    net.drain()
    assert_rejected_on_both_sides(net, "t1", RejectionCause.UNKNOWN_ACCOUNT)


def test_a_debtor_at_another_participant_is_refused_at_n_and_never_sent(net):
    # The transfer was never n's to send, so p keeps no record of it (receiver_must_know).
    net.submit("n", request("t1", "1.00", debtor=("p", "bob"), creditor=("p", "bobby")))
    net.drain()
    state = outgoing(net, "t1")
    assert (state.phase, state.cause) == (Phase.SETTLED, RejectionCause.INVALID_TRANSFER)
    assert incoming(net, "t1") is None
    assert_no_money_moved(net)


def test_a_transfer_to_the_same_account_is_refused_and_n_as_receiver_agrees(net):
    net.submit("n", request("t1", "1.00", creditor=("n", "alice")))
    net.drain()
    state = outgoing(net, "t1")
    assert (state.outcome, state.cause) == (Outcome.REJECTED, RejectionCause.SAME_ACCOUNT)
    as_receiver = incoming(net, "t1", p="n")
    assert (as_receiver.phase, as_receiver.cause) == (
        Phase.CONFIRMED,
        RejectionCause.SAME_ACCOUNT,
    )
    assert_no_money_moved(net)


def test_an_unknown_participant_is_refused_at_n_and_nothing_is_sent(net):
    net.submit("n", request("t1", "1.00", creditor=("q", "bob")))
    ws = net.deliver_next()
    state = outgoing(net, "t1")
    assert (state.phase, state.outcome, state.cause) == (
        Phase.SETTLED,
        Outcome.REJECTED,
        RejectionCause.UNKNOWN_PARTICIPANT,
    )
    assert [w.key for w in ws.writes()] == [outgoing_key("n", "t1")]
    assert net.in_flight == []
    assert_no_money_moved(net)


def test_an_overdraft_by_two_transfers_in_flight_rejects_the_second(net):
    net.submit("n", request("t1", "60.00"), request("t2", "60.00"))
    net.drain()
    assert outgoing(net, "t1").outcome is Outcome.OK
    assert_rejected_on_both_sides(net, "t2", RejectionCause.INSUFFICIENT_FUNDS)
    assert money(net.bank("n").account("alice")) == (40_00, 0, 0)
    assert money(net.bank("p").account("bob")) == (60_00, 0, 0)
