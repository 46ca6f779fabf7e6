"""The give-up saga (DESIGN.md section 5), decided purely over a WorkSet.

The submitter n may give up on a transfer that is still RESERVED: the decision is one event
(`TransferCancelled`), the reservation is voided, and the CANCEL goes to p as the confirmation
(a Confirm with outcome CANCELLED that carries the transfer), which p acknowledges with a
`result` CANCELLED. p keeps an accepted credit pending
until it is confirmed, so a CANCEL can always void it; a CANCEL that comes before the posting
leaves a tombstone, and the late posting is answered CANCELLED from it. Nothing here can undo a
confirmed outcome: the table has no row out of a final phase.
"""

from __future__ import annotations

import enum

import msgspec
from msgspec.structs import replace

from eventsource.core.errors import ProtocolError
from eventsource.core.events import TransferState
from eventsource.core.messages import Confirm, Kind, Result
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase, Step, transition
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from eventsource.core.workset import WorkSet

CANCELLED_BY_SUBMITTER = "cancelled by the submitter"


class GiveUpReason(enum.StrEnum):
    """Why n gave up; recorded in the `detail` of its record."""

    DEADLINE_PASSED = "DEADLINE_PASSED"
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"


def give_up(ws: WorkSet, transfer_id: str, reason: GiveUpReason) -> bool:
    """n gives up on a RESERVED transfer: void the reservation, end CANCELLED, send the CANCEL.

    Returns False, changing nothing, when the record already has its outcome (SETTLED: the
    result came first, or n gave up before). The caller loads the record and its debtor
    account (`dispatch.account_keys_of`).
    """
    n = ws.participant
    key = outgoing_key(n, transfer_id)
    state = ws.state(key)
    if not isinstance(state, TransferState):
        raise ProtocolError(f"cannot give up the unknown transfer {key}")
    if state.phase is not Phase.RESERVED:
        return False
    phase, effect = transition(
        Side.SUBMITTER, state.phase, Step.TRANSFER_CANCELLED, Outcome.CANCELLED
    )
    transfer = state.transfer
    ws.move(account_key(n, transfer.debtor.account), effect, transfer.id, transfer)
    state = replace(
        state, phase=phase, outcome=Outcome.CANCELLED, cause=None, detail=f"gave up: {reason}"
    )
    ws.record(key, Step.TRANSFER_CANCELLED, state)
    ws.send(transfer.creditor.participant, Kind.CONFIRM, cancel_confirm(state))
    return True


def cancel_confirm(state: TransferState) -> Confirm:
    """The CANCEL of a cancelled submitter record, sent once and again for every late result."""
    assert state.outcome is Outcome.CANCELLED
    return Confirm(
        id=state.transfer.id,
        digest=state.digest,
        outcome=Outcome.CANCELLED,
        transfer=state.transfer,
    )


def receiver_cancel_step(decided: TransferState) -> Step:
    """The step a CANCEL takes on p's DECIDED record: an accepted credit must be voided."""
    return Step.CREDIT_CANCELLED if decided.outcome is Outcome.OK else Step.CANCEL_RECORDED


def record_cancel(ws: WorkSet, sender: str, confirm: Confirm) -> None:
    """A CANCEL at p: void a pending credit, cancel a declined record, or leave a tombstone.

    Each is acknowledged with a `result` CANCELLED; a duplicate changes nothing else. A CANCEL
    for a record confirmed OK or REJECTED is refused (dead-lettered) and never applied, since
    no table row leaves a final phase.
    """
    p, transfer = ws.participant, confirm.transfer
    if transfer is msgspec.UNSET:
        raise ProtocolError(f"CANCEL for {confirm.id} does not carry its transfer")
    if transfer.id != confirm.id or transfer.digest != confirm.digest:
        raise ProtocolError(f"CANCEL for {confirm.id} does not match its transfer")
    if transfer.creditor.participant != p or transfer.debtor.participant != sender:
        raise ProtocolError(f"CANCEL for {confirm.id} is not from {sender} to {p}")
    key = incoming_key(p, sender, confirm.id)
    state = ws.state(key)
    if state is None:
        phase, _ = transition(Side.RECEIVER, None, Step.CANCEL_RECORDED, Outcome.CANCELLED)
        tombstone = TransferState(
            transfer=transfer,
            digest=confirm.digest,
            side=Side.RECEIVER,
            phase=phase,
            outcome=Outcome.CANCELLED,
            detail=CANCELLED_BY_SUBMITTER,
        )
        ws.record(key, Step.CANCEL_RECORDED, tombstone)
        _acknowledge(ws, sender, tombstone)
        return
    assert isinstance(state, TransferState)
    if state.digest != confirm.digest:
        raise ProtocolError(f"CANCEL for {key} does not match the transfer's digest")
    if state.phase is Phase.CONFIRMED:
        if state.outcome is Outcome.CANCELLED:
            _acknowledge(ws, sender, state)
            return
        raise ProtocolError(f"CANCEL for {key} refused: the transfer is confirmed {state.outcome}")
    step = receiver_cancel_step(state)
    phase, effect = transition(Side.RECEIVER, state.phase, step, Outcome.CANCELLED)
    ref = f"{sender}.{transfer.id}"
    ws.move(account_key(p, state.transfer.creditor.account), effect, ref, state.transfer)
    cancelled = replace(
        state, phase=phase, outcome=Outcome.CANCELLED, cause=None, detail=CANCELLED_BY_SUBMITTER
    )
    ws.record(key, step, cancelled)
    _acknowledge(ws, sender, cancelled)


def _acknowledge(ws: WorkSet, submitter: str, cancelled: TransferState) -> None:
    """p answers every CANCEL with a `result` CANCELLED, which n records nothing for. In core
    mode it is what stops n resending the CANCEL; in JetStream mode it is one more message."""
    result = Result(id=cancelled.transfer.id, digest=cancelled.digest, outcome=Outcome.CANCELLED)
    ws.send(submitter, Kind.RESULT, result)
