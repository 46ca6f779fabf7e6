"""What the projector reads from the shared store, as the same rows as the independent store's,
so that a bank queries its projection the same way whichever store runs. Pure: no I/O.

An account event on `$KV.shared.<P>.acct.<A>` is the account's row. A transfer's one record,
`$KV.shared.<N>.xfer.<ID>`, final from its first write, is two records' rows: the submitter's
(`<N>.out.<ID>`, SETTLED) and, when the transfer credited the receiver (OK), the receiver's
(`<P>.in.<N>.<ID>`, CONFIRMED). A REJECTED transfer never reached the receiver: the shared
store takes no step of P's, so P has no row of it (unlike the independent store, where P
declines what N refused: PROTOCOL.md section 8).
"""

from __future__ import annotations

import msgspec

from eventsource.core.events import TransferState
from eventsource.core.model import Outcome, Side
from eventsource.core.protocol import Phase
from eventsource.core.shared.layout import (
    TransferDecision,
    is_transfer_key,
    key_of_shared_subject,
    shared_transfer_decoder,
)
from eventsource.core.subjects import incoming_key, outgoing_key
from projections.model import Row, TransferRow, Undecodable, account_row, record_row


def shared_rows(subject: str, data: bytes, participant: str | None = None) -> list[Row]:
    """The rows of a shared-store state event (of `participant`'s keys only, if given);
    raises Undecodable."""
    key = key_of_shared_subject(subject)
    if key is None or key.count(".") != 2:
        raise Undecodable(f"{subject} is not a shared-store state subject")
    if not is_transfer_key(key):
        rows: list[Row] = [account_row(key, data)]
    else:
        try:
            event = shared_transfer_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise Undecodable(f"{key}: {exc}") from None
        submitter, _, transfer_id = key.split(".")
        if event.state.transfer.id != transfer_id:
            raise Undecodable(f"{key} holds the record of transfer {event.state.transfer.id}")
        rows = record_rows(submitter, event.state, event.at)
    return [row for row in rows if participant in (None, row.participant)]


def views_of(submitter: str, decision: TransferDecision) -> dict[str, tuple[str, TransferState]]:
    """Each side's view of a shared-store record: key -> (counterparty, that side's state)."""
    transfer = decision.transfer
    receiver = transfer.creditor.participant

    def view(side: Side, phase: Phase) -> TransferState:
        return TransferState(
            transfer=transfer,
            digest=decision.digest,
            side=side,
            phase=phase,
            outcome=decision.outcome,
            cause=decision.cause,
            detail=decision.detail,
        )

    views = {outgoing_key(submitter, transfer.id): (receiver, view(Side.SUBMITTER, Phase.SETTLED))}
    if decision.outcome is Outcome.OK:  # it credited the receiver: P's view too
        key = incoming_key(receiver, submitter, transfer.id)
        views[key] = (submitter, view(Side.RECEIVER, Phase.CONFIRMED))
    return views


def record_rows(submitter: str, decision: TransferDecision, at: int) -> list[TransferRow]:
    return [
        record_row(key, counterparty, state, at)
        for key, (counterparty, state) in views_of(submitter, decision).items()
    ]
