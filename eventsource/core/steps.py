"""The four protocol steps, decided purely over a WorkSet.

Each function handles one item of one inbox message. It either records the step (events, money
movements, the outbound message) or answers a duplicate from the stored state; it never applies
a step twice (I3). Items that break the protocol go to the dead-letter list with a reason.
"""

from __future__ import annotations

from collections.abc import Collection

from msgspec.structs import replace

from eventsource.core.account import require_open
from eventsource.core.errors import DeadLetterReason, DomainError, ProtocolError, RejectionCause
from eventsource.core.events import TransferState, encoder
from eventsource.core.history import IdPlace, place_id
from eventsource.core.messages import Confirm, Kind, Posting, Result
from eventsource.core.model import (
    Outcome,
    Side,
    Transfer,
    TransferRequest,
    admitted,
)
from eventsource.core.protocol import Phase, Step, transition
from eventsource.core.remote import asked_credit, remote_decline
from eventsource.core.saga import cancel_confirm, record_cancel
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from eventsource.core.workset import WorkSet, id_conflict

_UNPLACED = {
    IdPlace.FUTURE: "the transfer id's time is ahead of the servers' clock by more than the "
    "allowed skew",
    IdPlace.UNTIMED: "with a bounded history a transfer id must be a ULID or a UUIDv7 (its time "
    "says where to look for it)",
}


def admit_transfer(ws: WorkSet, request: TransferRequest) -> None:
    """Step 1 at the submitter n: reserve the funds and send the posting, or refuse."""
    n = ws.participant
    transfer, refusal = admitted(request, n)
    key = outgoing_key(n, transfer.id)
    existing = ws.state(key)
    if existing is not None:
        assert isinstance(existing, TransferState)
        if existing.digest != transfer.digest:
            ws.dead_letters.append(id_conflict(transfer.id, request))
        return
    place = place_id(transfer.id, ws.acked_ms or ws.now_ms, ws.history)
    if place in (IdPlace.FUTURE, IdPlace.UNTIMED):  # nothing recorded: see core/history.py
        ws.dead_letter(
            DeadLetterReason.PROTOCOL_VIOLATION, _UNPLACED[place], encoder.encode(request)
        )
        return
    if place is IdPlace.OLD:  # neither the live ledger nor the archive holds it (decider)
        refusal = refusal or DomainError(
            f"transfer id {transfer.id} is older than the live horizon and not in the archive: "
            "make a new id",
            RejectionCause.ID_EXPIRED,
        )
    receiver = transfer.creditor.participant
    if refusal is None and receiver not in ws.known_participants:
        refusal = DomainError(
            f"unknown participant {receiver!r}", RejectionCause.UNKNOWN_PARTICIPANT
        )
    debtor_key = account_key(n, transfer.debtor.account)
    if refusal is None:
        try:
            require_open(ws.state(debtor_key), transfer.currency, transfer.debtor.account)
            ws.move(
                debtor_key,
                transition(Side.SUBMITTER, None, Step.FUNDS_RESERVED, None)[1],
                transfer.id,
                transfer,
            )
        except DomainError as exc:
            refusal = exc
    digest = transfer.digest
    if refusal is None:
        state = TransferState(
            transfer=transfer, digest=digest, side=Side.SUBMITTER, phase=Phase.RESERVED
        )
        ws.record(key, Step.FUNDS_RESERVED, state)
        ws.send(receiver, Kind.POSTING, Posting(transfer=transfer, digest=digest))
        return
    phase, _ = transition(Side.SUBMITTER, None, Step.TRANSFER_REFUSED, Outcome.REJECTED)
    state = TransferState(
        transfer=transfer,
        digest=digest,
        side=Side.SUBMITTER,
        phase=phase,
        outcome=Outcome.REJECTED,
        cause=refusal.cause,
        detail=refusal.detail,
    )
    ws.record(key, Step.TRANSFER_REFUSED, state)
    if receiver_must_know(transfer, n, ws.known_participants):
        # p must know every ACKed id too (I7), so it hears of refusals and declines them.
        ws.send(
            receiver,
            Kind.POSTING,
            Posting(transfer=transfer, digest=digest, refused=refusal.cause, detail=refusal.detail),
        )


def receiver_must_know(transfer: Transfer, submitter: str, registered: Collection[str]) -> bool:
    """Whether the receiver gets (and keeps) a record of this transfer: always, unless the
    receiver is not a registered participant or the transfer was never the submitter's to send."""
    return transfer.creditor.participant in registered and transfer.debtor.participant == submitter


def decide_posting(ws: WorkSet, sender: str, posting: Posting) -> None:
    """Step 2 at the receiver p: accept (pending credit) or decline, and respond."""
    p, transfer = ws.participant, posting.transfer
    if transfer.creditor.participant != p or transfer.debtor.participant != sender:
        raise ProtocolError(f"posting {transfer.id} is not from {sender} to {p}")
    if transfer.digest != posting.digest:
        raise ProtocolError(f"posting {transfer.id} does not match its digest")
    key = incoming_key(p, sender, transfer.id)
    existing = ws.state(key)
    if existing is not None:
        assert isinstance(existing, TransferState)
        if existing.digest != posting.digest:
            raise ProtocolError(f"posting {transfer.id} was already received with other content")
        _respond(ws, sender, existing)
        return
    decline: DomainError | None = None
    if posting.refused is not None:
        decline = DomainError(posting.detail or str(posting.refused), posting.refused)
    else:
        credit_key = account_key(p, transfer.creditor.account)
        try:
            require_open(ws.state(credit_key), transfer.currency, transfer.creditor.account)
            if ws.remote is not None and not _remote_accepts(ws, sender, transfer):
                return  # no verdict yet: the proxy asks its remote bank, then decides again
            effect = transition(Side.RECEIVER, None, Step.POSTING_ACCEPTED, Outcome.OK)[1]
            ws.move(credit_key, effect, f"{sender}.{transfer.id}", transfer)
        except DomainError as exc:
            decline = exc
    if decline is None:
        step, outcome, cause, detail = Step.POSTING_ACCEPTED, Outcome.OK, None, ""
    else:
        step, outcome = Step.POSTING_DECLINED, Outcome.REJECTED
        cause, detail = decline.cause, decline.detail
    phase, _ = transition(Side.RECEIVER, None, step, outcome)
    state = TransferState(
        transfer=transfer,
        digest=posting.digest,
        side=Side.RECEIVER,
        phase=phase,
        outcome=outcome,
        cause=cause,
        detail=detail,
    )
    ws.record(key, step, state)
    _respond(ws, sender, state)


def _remote_accepts(ws: WorkSet, sender: str, transfer: Transfer) -> bool:
    """A proxy's new posting that passed its own checks: True if its remote bank accepted;
    raises its decline; False (and noted in `awaiting_remote`) without a verdict yet. The proxy
    never accepts for the remote bank (core/remote.py)."""
    assert ws.remote is not None
    credit = asked_credit(sender, transfer)
    verdict = ws.remote.get(credit.key)
    if verdict is None:
        ws.awaiting_remote[credit.key] = credit
        return False
    decline = remote_decline(verdict)
    if decline is not None:
        raise decline
    return True


def settle_result(ws: WorkSet, sender: str, result: Result) -> None:
    """Step 3 at n: post or void the reservation, then confirm (also for a duplicate)."""
    n = ws.participant
    state = _known(ws, outgoing_key(n, result.id), result.digest, "result")
    if state.transfer.creditor.participant != sender:
        raise ProtocolError(f"result for {result.id} came from {sender}, not the receiver")
    if state.phase is Phase.RESERVED:
        if result.outcome is Outcome.CANCELLED:
            raise ProtocolError(f"result CANCELLED for {result.id}: only the submitter cancels")
        phase, effect = transition(
            Side.SUBMITTER, state.phase, Step.TRANSFER_SETTLED, result.outcome
        )
        debtor_key = account_key(n, state.transfer.debtor.account)
        ws.move(debtor_key, effect, state.transfer.id, state.transfer)
        state = replace(
            state, phase=phase, outcome=result.outcome, cause=result.cause, detail=result.detail
        )
        ws.record(outgoing_key(n, result.id), Step.TRANSFER_SETTLED, state)
    elif state.outcome is Outcome.CANCELLED:
        # n gave up first: its outcome stays CANCELLED whatever p answered. A late OK or
        # REJECTED is answered with the CANCEL again (which voids p's pending credit or cancels
        # its decline); a CANCELLED result is p's acknowledgement and needs no answer.
        if result.outcome is not Outcome.CANCELLED:
            ws.send(sender, Kind.CONFIRM, cancel_confirm(state))
        return
    elif state.outcome is not result.outcome:
        raise ProtocolError(
            f"result {result.outcome} for {result.id} contradicts the final {state.outcome}"
        )
    ws.send(
        sender,
        Kind.CONFIRM,
        Confirm(id=result.id, digest=state.digest, outcome=state.outcome or result.outcome),
    )


def record_confirm(ws: WorkSet, sender: str, confirm: Confirm) -> None:
    """Step 4 at p: the submitter has the outcome; post the pending credit. A CANCEL (outcome
    CANCELLED) is the saga's confirmation instead (eventsource/core/saga.py)."""
    if confirm.outcome is Outcome.CANCELLED:
        record_cancel(ws, sender, confirm)
        return
    p = ws.participant
    key = incoming_key(p, sender, confirm.id)
    state = _known(ws, key, confirm.digest, "confirm")
    if state.outcome is not confirm.outcome:
        raise ProtocolError(
            f"confirm {confirm.outcome} for {confirm.id} contradicts the decided {state.outcome}"
        )
    if state.phase is Phase.CONFIRMED:
        return
    phase, effect = transition(Side.RECEIVER, state.phase, Step.OUTCOME_CONFIRMED, state.outcome)
    credit_key = account_key(p, state.transfer.creditor.account)
    ws.move(credit_key, effect, f"{sender}.{state.transfer.id}", state.transfer)
    ws.record(key, Step.OUTCOME_CONFIRMED, replace(state, phase=phase))


def _respond(ws: WorkSet, submitter: str, state: TransferState) -> None:
    assert state.outcome is not None
    ws.send(
        submitter,
        Kind.RESULT,
        Result(
            id=state.transfer.id,
            digest=state.digest,
            outcome=state.outcome,
            cause=state.cause,
            detail=state.detail,
        ),
    )


def _known(ws: WorkSet, key: str, digest: str, what: str) -> TransferState:
    state = ws.state(key)
    if not isinstance(state, TransferState):
        raise ProtocolError(f"{what} for unknown transfer {key}")
    if state.digest != digest:
        raise ProtocolError(f"{what} for {key} does not match the transfer's digest")
    return state
