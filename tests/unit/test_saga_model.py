"""A model-based test of the give-up saga (hypothesis stateful testing).

Two participants send each other transfers while the network delivers, duplicates and reorders
their messages and deadlines fire (give-ups). Each rule is one commit of the pure steps
(tests/unit/simulation.py). After every step I1-I3 hold and no final outcome changes (I4);
at the end, once everything is delivered, every transfer is final and agreed on both sides (I4,
I7), every ledger entry was written once per transfer (I3), and the re-fold of all events
rebuilds the state with no problem (I5).

A message is never lost for good: in JetStream mode the inbox message stays in the stream until
the recipient commits its step and acks it, so a "lost" delivery is a redelivery later
(`lose_delivery`), and a crash before the ack is a duplicate (`deliver` with `keep`).
"""

from __future__ import annotations

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase
from eventsource.core.saga import GiveUpReason
from eventsource.core.subjects import account_key, outgoing_key
from tests.unit.ledger_checks import (
    FinalityWatch,
    check_every_step,
    check_final_and_agreed,
    check_fold_equals_state,
    check_money_moved_once_or_not_at_all,
)
from tests.unit.simulation import Network, fold_network, request

ACCOUNTS = {"n": ("alice", 100_00), "p": ("bob", 50_00)}
OTHER = {"n": "p", "p": "n"}
BANKS = st.sampled_from(sorted(ACCOUNTS))


class SagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Network.of(*ACCOUNTS)
        for bank, (account, funds) in ACCOUNTS.items():
            self.net.open_account(bank, account, "EUR", funds)
        self.funding = {account_key(b, a): funds for b, (a, funds) in ACCOUNTS.items()}
        self.watch = FinalityWatch()
        self.submitted: list[tuple[str, str]] = []  # (submitter, transfer id)

    @rule(bank=BANKS, cents=st.integers(1, 80_00))
    def submit(self, bank: str, cents: int) -> None:
        transfer_id = f"t{len(self.submitted)}"
        debtor, creditor = (bank, ACCOUNTS[bank][0]), (OTHER[bank], ACCOUNTS[OTHER[bank]][0])
        amount = f"{cents // 100}.{cents % 100:02d}"
        self.net.submit(bank, request(transfer_id, amount, debtor=debtor, creditor=creditor))
        self.submitted.append((bank, transfer_id))

    @precondition(lambda self: self.net.in_flight)
    @rule(pick=st.integers(0, 10_000), keep=st.booleans(), optimistic=st.booleans())
    def deliver(self, pick: int, keep: bool, optimistic: bool) -> None:
        """Deliver any message in flight; `keep` leaves it there too (a duplicate delivery)."""
        index = pick % len(self.net.in_flight)
        self.net.deliver([index], keep=frozenset({index} if keep else ()), optimistic=optimistic)

    @precondition(lambda self: self.net.in_flight)
    @rule(pick=st.integers(0, 10_000))
    def lose_delivery(self, pick: int) -> None:
        """A delivery lost before the commit: the stream delivers the message again, later."""
        self.net.in_flight.append(self.net.in_flight.pop(pick % len(self.net.in_flight)))

    @precondition(lambda self: self.submitted)
    @rule(pick=st.integers(0, 10_000), reason=st.sampled_from(GiveUpReason))
    def deadline(self, pick: int, reason: GiveUpReason) -> None:
        """A submitter's deadline fires: it gives up exactly when it has no outcome yet."""
        bank, transfer_id = self.submitted[pick % len(self.submitted)]
        before = self.net.bank(bank).states.get(outgoing_key(bank, transfer_id), (None, 0))[0]
        if before is None:
            return  # not admitted yet: there is nothing to give up on
        gave_up = self.net.give_up(bank, transfer_id, reason)
        assert gave_up is (before.phase is Phase.RESERVED)
        event(f"give-up {'taken' if gave_up else 'refused'}")

    @invariant()
    def money_and_finality_hold(self) -> None:
        check_every_step(self.net, self.watch)

    def teardown(self) -> None:
        self.net.drain()
        check_every_step(self.net, self.watch)
        check_final_and_agreed(self.net)
        check_money_moved_once_or_not_at_all(self.net, self.funding)
        check_fold_equals_state(self.net, fold_network(self.net))
        for bank in self.net.banks.values():
            assert bank.dead_letters == [], bank.dead_letters
            for state in bank.transfers().values():
                if state.side is Side.SUBMITTER:
                    event(f"outcome {state.outcome}")
                    if state.outcome is Outcome.CANCELLED:
                        assert state.detail.startswith("gave up: ")


SagaMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestSaga = SagaMachine.TestCase
