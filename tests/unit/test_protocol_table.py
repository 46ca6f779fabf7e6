"""The protocol table, checked against DESIGN.md sections 1-2 written out here independently."""

from __future__ import annotations

import itertools

import pytest

from eventsource.core.account import ENTRY_OF_EFFECT, EntryKind
from eventsource.core.events import EVENT_OF_STEP, TransferState
from eventsource.core.model import Outcome, Side, validate_transfer
from eventsource.core.protocol import (
    FINAL_PHASES,
    Effect,
    IllegalTransition,
    Phase,
    Step,
    transition,
)
from tests.unit.simulation import request

S, R = Side.SUBMITTER, Side.RECEIVER
OK, REJECTED, CANCELLED = Outcome.OK, Outcome.REJECTED, Outcome.CANCELLED

# DESIGN 2, two-phase money movement, in the words of the brief:
SPEC = {
    # n reserves the amount on the debtor account (a pending debit) ...
    (S, None, Step.FUNDS_RESERVED, None): (Phase.RESERVED, Effect.RESERVE),
    # ... or refuses the transfer at once, moving no money;
    (S, None, Step.TRANSFER_REFUSED, REJECTED): (Phase.SETTLED, Effect.NONE),
    # on OK, n posts the reservation;
    (S, Phase.RESERVED, Step.TRANSFER_SETTLED, OK): (Phase.SETTLED, Effect.POST_DEBIT),
    # on REJECTED, n voids it.
    (S, Phase.RESERVED, Step.TRANSFER_SETTLED, REJECTED): (Phase.SETTLED, Effect.VOID),
    # p credits the creditor account when it decides OK (pending until confirmed) ...
    (R, None, Step.POSTING_ACCEPTED, OK): (Phase.DECIDED, Effect.PEND_CREDIT),
    # ... or declines with a cause;
    (R, None, Step.POSTING_DECLINED, REJECTED): (Phase.DECIDED, Effect.NONE),
    # n's confirmation lets p stop resending and makes an OK credit spendable.
    (R, Phase.DECIDED, Step.OUTCOME_CONFIRMED, OK): (Phase.CONFIRMED, Effect.POST_CREDIT),
    (R, Phase.DECIDED, Step.OUTCOME_CONFIRMED, REJECTED): (Phase.CONFIRMED, Effect.NONE),
    # DESIGN 5: n gives up (only while it has no outcome) and voids its reservation;
    (S, Phase.RESERVED, Step.TRANSFER_CANCELLED, CANCELLED): (Phase.SETTLED, Effect.VOID),
    # a CANCEL voids p's pending credit, or cancels its decline, and confirms the record;
    (R, Phase.DECIDED, Step.CREDIT_CANCELLED, CANCELLED): (Phase.CONFIRMED, Effect.VOID_CREDIT),
    (R, Phase.DECIDED, Step.CANCEL_RECORDED, CANCELLED): (Phase.CONFIRMED, Effect.NONE),
    # a CANCEL before the posting leaves a tombstone, already final.
    (R, None, Step.CANCEL_RECORDED, CANCELLED): (Phase.CONFIRMED, Effect.NONE),
}

EVERY_CASE = list(itertools.product(Side, [None, *Phase], Step, [None, *Outcome]))


@pytest.mark.parametrize(("side", "phase", "step", "outcome"), list(SPEC))
def test_every_transition_of_the_design_is_in_the_table(side, phase, step, outcome):
    assert transition(side, phase, step, outcome) == SPEC[(side, phase, step, outcome)]


def test_every_other_combination_is_an_illegal_transition():
    illegal = [case for case in EVERY_CASE if case not in SPEC]
    assert len(illegal) == len(EVERY_CASE) - len(SPEC)
    for case in illegal:
        with pytest.raises(IllegalTransition):
            transition(*case)


@pytest.mark.parametrize(
    ("what", "case"),
    [
        ("confirming a RESERVED transfer", (R, Phase.RESERVED, Step.OUTCOME_CONFIRMED, OK)),
        ("confirming at the submitter", (S, Phase.SETTLED, Step.OUTCOME_CONFIRMED, OK)),
        ("settling twice", (S, Phase.SETTLED, Step.TRANSFER_SETTLED, OK)),
        ("settling a refused transfer", (S, Phase.SETTLED, Step.TRANSFER_SETTLED, REJECTED)),
        ("settling before reserving", (S, None, Step.TRANSFER_SETTLED, OK)),
        ("reserving twice", (S, Phase.RESERVED, Step.FUNDS_RESERVED, None)),
        ("confirming twice", (R, Phase.CONFIRMED, Step.OUTCOME_CONFIRMED, OK)),
        ("confirming an unknown posting", (R, None, Step.OUTCOME_CONFIRMED, OK)),
        ("deciding twice", (R, Phase.DECIDED, Step.POSTING_ACCEPTED, OK)),
        ("re-deciding after confirm", (R, Phase.CONFIRMED, Step.POSTING_DECLINED, REJECTED)),
        ("accepting with REJECTED", (R, None, Step.POSTING_ACCEPTED, REJECTED)),
        ("declining with OK", (R, None, Step.POSTING_DECLINED, OK)),
        ("refusing with OK", (S, None, Step.TRANSFER_REFUSED, OK)),
        ("the receiver reserving", (R, None, Step.FUNDS_RESERVED, None)),
        ("the submitter accepting", (S, None, Step.POSTING_ACCEPTED, OK)),
        ("giving up after the result", (S, Phase.SETTLED, Step.TRANSFER_CANCELLED, CANCELLED)),
        ("giving up before reserving", (S, None, Step.TRANSFER_CANCELLED, CANCELLED)),
        ("giving up with another outcome", (S, Phase.RESERVED, Step.TRANSFER_CANCELLED, OK)),
        ("settling as CANCELLED", (S, Phase.RESERVED, Step.TRANSFER_SETTLED, CANCELLED)),
        ("cancelling a confirmed credit", (R, Phase.CONFIRMED, Step.CREDIT_CANCELLED, CANCELLED)),
        ("cancelling after confirm", (R, Phase.CONFIRMED, Step.CANCEL_RECORDED, CANCELLED)),
        ("voiding a credit never accepted", (R, None, Step.CREDIT_CANCELLED, CANCELLED)),
        ("the receiver giving up", (R, Phase.DECIDED, Step.TRANSFER_CANCELLED, CANCELLED)),
        ("the submitter tombstoning", (S, None, Step.CANCEL_RECORDED, CANCELLED)),
        ("accepting as CANCELLED", (R, None, Step.POSTING_ACCEPTED, CANCELLED)),
        ("confirming CANCELLED plainly", (R, Phase.DECIDED, Step.OUTCOME_CONFIRMED, CANCELLED)),
    ],
)
def test_illegal_transitions_raise(what, case):
    with pytest.raises(IllegalTransition, match="cannot take"):
        transition(*case)


def test_settled_is_final_for_the_submitter_and_confirmed_for_the_receiver():
    assert FINAL_PHASES == {S: Phase.SETTLED, R: Phase.CONFIRMED}


@pytest.mark.parametrize(
    ("phase", "final"),
    [
        (Phase.RESERVED, False),
        (Phase.DECIDED, False),
        (Phase.SETTLED, True),
        (Phase.CONFIRMED, True),
    ],
)
def test_a_transfer_state_is_final_only_in_a_final_phase(phase, final):
    transfer = validate_transfer(request("t1"), "n")
    state = TransferState(transfer=transfer, digest=transfer.digest, side=S, phase=phase)
    assert state.final is final


def test_no_transition_leaves_a_final_phase():
    final = set(FINAL_PHASES.values())
    assert all(before not in final for (_, before, _, _) in SPEC)


def test_every_step_is_recorded_as_an_event_of_its_own_name():
    assert set(EVENT_OF_STEP) == set(Step)
    for step, event in EVENT_OF_STEP.items():
        assert event.__name__ == step.value


def test_every_money_effect_but_none_is_an_account_entry():
    assert set(ENTRY_OF_EFFECT) == set(Effect) - {Effect.NONE}
    assert set(ENTRY_OF_EFFECT.values()) == set(EntryKind) - {EntryKind.FUNDED}
