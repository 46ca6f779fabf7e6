"""Does an inbox message agree with the subject it came on? (issue 13, defense in depth)

The server's permissions let a bank publish only subjects that name it as the sender (token 6
of `nb.<k>.to.<Q>.<kind>.<S>.<token>`, token 5 of `nb.core.<Q>.<kind>.<S>`). What the message
says inside is the bank's own claim; a receiver checks that the two agree before deciding
anything, so that a bank cannot write as another even on a subject it may use:
- the sender: a protocol message's `sender`; a submission's is the bank it is submitted to
  (a client submits for its own bank: S = Q);
- the debtor's bank of every posting, and of the transfer a CANCEL carries: the sender (only
  the debtor's bank sends those);
- the recipient: this participant.

A subject of the old form (no sender token) is accepted while `accepts_old` allows it
(docs/PROTOCOL.md section 3, migration); the item checks of core/steps.py and core/saga.py
then compare the debtor's bank with the message's `sender` as before.
"""

from __future__ import annotations

import msgspec

from eventsource.core.errors import SubjectMismatch
from eventsource.core.messages import Confirms, InboxMessage, Postings, SubmitTransfers


def claimed_sender(message: InboxMessage, recipient: str) -> str:
    """The participant that the message says sent it."""
    if isinstance(message, SubmitTransfers):
        return recipient
    return message.sender


def check_subject(
    message: InboxMessage,
    *,
    participant: str,
    recipient: str,
    sender: str | None,
    accepts_old: bool = True,
) -> None:
    """Raise SubjectMismatch unless the subject (its `recipient` and `sender` tokens; sender
    None on the old form) agrees with the message received by `participant`."""
    if recipient != participant:
        raise SubjectMismatch(f"the subject names recipient {recipient}, not {participant}")
    if sender is None:
        if not accepts_old:
            raise SubjectMismatch("the subject carries no sender token (the old layout)")
        return
    claimed = claimed_sender(message, recipient)
    if sender != claimed:
        raise SubjectMismatch(f"the subject names sender {sender}, the message {claimed}")
    debtor = _foreign_debtor(message, sender)
    if debtor is not None:
        raise SubjectMismatch(
            f"transfer {debtor[0]} debits a {debtor[1]} account, but {sender} sent it"
        )


def _foreign_debtor(message: InboxMessage, sender: str) -> tuple[str, str] | None:
    """(transfer id, debtor's bank) of the first posting or CANCEL whose debtor's bank is not
    the sender, or None."""
    if isinstance(message, Postings):
        transfers = [p.transfer for p in message.postings]
    elif isinstance(message, Confirms):
        transfers = [c.transfer for c in message.confirms if c.transfer is not msgspec.UNSET]
    else:
        return None
    for transfer in transfers:
        if transfer.debtor.participant != sender:
            return transfer.id, transfer.debtor.participant
    return None
