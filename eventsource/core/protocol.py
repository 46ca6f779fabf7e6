"""The three-phase protocol (send -> respond -> confirm) as one transition table per side.

Read it against DESIGN.md section 1-2:

    submitter n:  (new)     --admit-->           RESERVED          reserve
                  (new)     --refuse-->          SETTLED/REJECTED  (cause from n)
                  RESERVED  --result OK-->       SETTLED/OK        post the debit
                  RESERVED  --result REJECTED--> SETTLED/REJECTED  void the reservation
    receiver p:   (new)     --accept-->          DECIDED/OK        pending credit
                  (new)     --decline-->         DECIDED/REJECTED  (cause)
                  DECIDED   --confirm-->         CONFIRMED         post the credit if OK

The give-up saga (DESIGN.md section 5, eventsource/core/saga.py) adds:

    submitter n:  RESERVED  --give up-->         SETTLED/CANCELLED void the reservation, CANCEL p
    receiver p:   DECIDED   --CANCEL (OK)-->     CONFIRMED/CANCELLED  void the pending credit
                  DECIDED   --CANCEL (REJ.)-->   CONFIRMED/CANCELLED  nothing to void
                  (new)     --CANCEL-->          CONFIRMED/CANCELLED  tombstone: a late posting
                                                                      is answered CANCELLED

A refused transfer is still sent to p (flagged), so that every ACKed id is known to both sides
(I7); p must decline it with n's cause. Messages that arrive in a phase where they change nothing
are answered from the stored state and never applied twice (I3).
"""

from __future__ import annotations

import enum

from eventsource.core.errors import ProtocolError
from eventsource.core.model import Outcome, Side


class Phase(enum.StrEnum):
    RESERVED = "RESERVED"
    SETTLED = "SETTLED"
    DECIDED = "DECIDED"
    CONFIRMED = "CONFIRMED"


class Step(enum.StrEnum):
    """Something that happens to a transfer; each one is recorded as an event of the same name."""

    FUNDS_RESERVED = "FundsReserved"
    TRANSFER_REFUSED = "TransferRefused"
    TRANSFER_SETTLED = "TransferSettled"
    POSTING_ACCEPTED = "PostingAccepted"
    POSTING_DECLINED = "PostingDeclined"
    OUTCOME_CONFIRMED = "OutcomeConfirmed"
    TRANSFER_CANCELLED = "TransferCancelled"  # n gave up
    CREDIT_CANCELLED = "CreditCancelled"  # p voided an accepted, still pending credit
    CANCEL_RECORDED = "CancelRecorded"  # p cancelled a declined record, or left a tombstone


class Effect(enum.StrEnum):
    """What a step does to the money of the side's own account."""

    NONE = "none"
    RESERVE = "reserve"
    POST_DEBIT = "post_debit"
    VOID = "void"
    PEND_CREDIT = "pend_credit"
    POST_CREDIT = "post_credit"
    VOID_CREDIT = "void_credit"


# (side, phase before or None for a new transfer, step, outcome of the step)
#     -> (phase after, money effect)
TRANSITIONS: dict[tuple[Side, Phase | None, Step, Outcome | None], tuple[Phase, Effect]] = {
    (Side.SUBMITTER, None, Step.FUNDS_RESERVED, None): (Phase.RESERVED, Effect.RESERVE),
    (Side.SUBMITTER, None, Step.TRANSFER_REFUSED, Outcome.REJECTED): (Phase.SETTLED, Effect.NONE),
    (Side.SUBMITTER, Phase.RESERVED, Step.TRANSFER_SETTLED, Outcome.OK): (
        Phase.SETTLED,
        Effect.POST_DEBIT,
    ),
    (Side.SUBMITTER, Phase.RESERVED, Step.TRANSFER_SETTLED, Outcome.REJECTED): (
        Phase.SETTLED,
        Effect.VOID,
    ),
    (Side.RECEIVER, None, Step.POSTING_ACCEPTED, Outcome.OK): (Phase.DECIDED, Effect.PEND_CREDIT),
    (Side.RECEIVER, None, Step.POSTING_DECLINED, Outcome.REJECTED): (Phase.DECIDED, Effect.NONE),
    (Side.RECEIVER, Phase.DECIDED, Step.OUTCOME_CONFIRMED, Outcome.OK): (
        Phase.CONFIRMED,
        Effect.POST_CREDIT,
    ),
    (Side.RECEIVER, Phase.DECIDED, Step.OUTCOME_CONFIRMED, Outcome.REJECTED): (
        Phase.CONFIRMED,
        Effect.NONE,
    ),
    # The give-up saga (DESIGN.md section 5). No row leaves a final phase: a CANCEL can
    # never undo a confirmed OK.
    (Side.SUBMITTER, Phase.RESERVED, Step.TRANSFER_CANCELLED, Outcome.CANCELLED): (
        Phase.SETTLED,
        Effect.VOID,
    ),
    (Side.RECEIVER, Phase.DECIDED, Step.CREDIT_CANCELLED, Outcome.CANCELLED): (
        Phase.CONFIRMED,
        Effect.VOID_CREDIT,
    ),
    (Side.RECEIVER, Phase.DECIDED, Step.CANCEL_RECORDED, Outcome.CANCELLED): (
        Phase.CONFIRMED,
        Effect.NONE,
    ),
    (Side.RECEIVER, None, Step.CANCEL_RECORDED, Outcome.CANCELLED): (
        Phase.CONFIRMED,
        Effect.NONE,
    ),
}

FINAL_PHASES = {Side.SUBMITTER: Phase.SETTLED, Side.RECEIVER: Phase.CONFIRMED}


class IllegalTransition(ProtocolError):
    """A step that the table does not allow from the current phase."""


def transition(
    side: Side, phase: Phase | None, step: Step, outcome: Outcome | None
) -> tuple[Phase, Effect]:
    try:
        return TRANSITIONS[(side, phase, step, outcome)]
    except KeyError:
        raise IllegalTransition(
            f"{side} cannot take {step} ({outcome}) in phase {phase or 'new'}"
        ) from None
