"""What `dead-letters retry` republishes, or why it refuses (pure).

A dead letter is republished as its recipient's inbox would have received it, onto the
subject it first arrived on (in the current layout: a letter from an old subject without a
sender token goes back with the sender its message claims, docs/PROTOCOL.md section 3):
- a whole message as it arrived, byte for byte;
- one item as a message of one item, of the same kind and from the same sender as the message
  that carried it (the other items of that message were processed at the time, and are not
  sent again).
Either way the recipient decides it again like any redelivery: every step is idempotent per
transfer id, so a republished duplicate changes nothing.

Refused, with what to do instead: a letter that came over core NATS (its sender resends it
itself) or from a ledger record (state is never republished), an ID_CONFLICT (ids are
permanent keys: it would conflict again), a SUBJECT_MISMATCH (a message that claims another
sender than its subject named is a forgery or a broken sender: republishing it under the
sender it claims would launder it), and a payload that would be dead-lettered again at once
(it does not decode, breaks the message rules, or no longer fits its subject).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from eventsource.core.dead_letter_records import ITEM, DeadLetter, source_position
from eventsource.core.dispatch import check_message
from eventsource.core.errors import DeadLetterReason, NotRetryable, ProtocolError
from eventsource.core.messages import (
    KIND_OF,
    Confirm,
    Confirms,
    InboxMessage,
    Kind,
    Posting,
    Postings,
    Result,
    Results,
    SubmitTransfers,
    inbox_decoder,
)
from eventsource.core.model import TransferRequest
from eventsource.core.shared.layout import (
    SHARED_STREAM,
    parse_submit_subject,
    shared_consumer,
    submit_subject,
)
from eventsource.core.subject_check import check_subject, claimed_sender
from eventsource.core.subjects import (
    inbox_consumer,
    inbox_subject,
    ledger_stream,
    parse_inbox_subject,
    submit_consumer,
)

RETRY_MSG_ID_PREFIX = "natsbank-retry-"
_ITEMS = {
    SubmitTransfers: ("transfers", TransferRequest),
    Postings: ("postings", Posting),
    Results: ("results", Result),
    Confirms: ("confirms", Confirm),
}


@dataclass(frozen=True)
class Target:
    """Where a retried letter goes, and the durable consumer that must be there to read it.
    `subject` is the one it arrived on; `retry_subject` says the one it goes back on."""

    stream: str
    subject: str
    recipient: str
    kind: str
    consumer: str
    partition: int | None = None  # None: the shared store's inbox
    sender: str | None = None  # the subject's sender token; None on the old layout
    token: str = ""


def retry_target(letter: DeadLetter) -> Target:
    """The inbox the letter came from; NotRetryable if it did not come from one, or if
    republishing it cannot change anything whatever its payload."""
    position = source_position(letter.source)
    if position is None:
        raise NotRetryable(
            f"dead letter {letter.seq} came over core NATS ({letter.source_subject}): nothing "
            "stored to republish; its sender resends it until it is answered"
        )
    if letter.reason == DeadLetterReason.ID_CONFLICT:
        raise NotRetryable(
            f"dead letter {letter.seq} is an ID_CONFLICT: transfer ids are permanent, so the "
            "same id with other content is refused again; submit it under a new id"
        )
    if letter.reason == DeadLetterReason.SUBJECT_MISMATCH:
        raise NotRetryable(
            f"dead letter {letter.seq} is a SUBJECT_MISMATCH: its message claims another "
            "sender or recipient than its subject named, so it is never republished; the "
            "real sender must send it again"
        )
    if letter.reason == DeadLetterReason.BAD_SIGNATURE:
        raise NotRetryable(
            f"dead letter {letter.seq} is a BAD_SIGNATURE: it is not signed by its sender's "
            "registered key, and a republished copy would not be either"
        )
    stream, subject = position[0], letter.source_subject
    inbox = parse_inbox_subject(subject)
    if inbox is not None and stream == ledger_stream(inbox.partition):
        k, recipient, kind = inbox.partition, inbox.recipient, inbox.kind
        consumer = submit_consumer if kind == Kind.SUBMIT.value else inbox_consumer
        return Target(
            stream, subject, recipient, kind, consumer(recipient, k), k, inbox.sender, inbox.token
        )
    shared = parse_submit_subject(subject)
    if shared is not None and stream == SHARED_STREAM:
        submitter, sender = shared
        token = subject.rsplit(".", 1)[1]
        consumer = shared_consumer(submitter)
        return Target(stream, subject, submitter, "submit", consumer, None, sender, token)
    raise NotRetryable(
        f"dead letter {letter.seq} came from {letter.source} ({subject}), which is not an inbox "
        "message: ledger records are never republished (`natsbank audit` checks them)"
    )


def retry_payload(
    letter: DeadLetter, target: Target, payload: bytes, carrier: bytes | None
) -> bytes:
    """The message to republish. `carrier` is the stored message that carried an item (None
    if it is gone); a whole message needs none."""
    if letter.payload_kind != ITEM:
        _check(letter, target, payload)
        return payload
    if carrier is None:
        raise NotRetryable(
            f"dead letter {letter.seq} is one item of {letter.source}, which is no longer "
            "stored: its sender is unknown, so it cannot be rebuilt as a message"
        )
    original = _check(letter, target, carrier)
    field, item_type = _ITEMS[type(original)]
    try:
        item = msgspec.json.decode(payload, type=item_type)
    except msgspec.DecodeError as exc:
        raise NotRetryable(f"dead letter {letter.seq} is not a {target.kind} item: {exc}") from None
    one = msgspec.json.encode(msgspec.structs.replace(original, **{field: [item]}))
    _check(letter, target, one)
    return one


def retry_subject(target: Target, payload: bytes) -> str:
    """The subject the republished `payload` (checked by retry_payload) goes on: the one it
    arrived on, in the current layout (the sender token is the one its message claims)."""
    sender = target.sender or claimed_sender(inbox_decoder.decode(payload), target.recipient)
    if target.partition is None:
        return submit_subject(target.recipient, target.token)
    kind = Kind(target.kind)
    return inbox_subject(target.partition, target.recipient, kind, sender, target.token)


def retry_msg_id(letter: DeadLetter) -> str:
    """The Nats-Msg-Id of the republished message: the same for every retry of one letter, so
    two retries within the duplicate window store it once."""
    return f"{RETRY_MSG_ID_PREFIX}{letter.msg_id or letter.seq}"


def _check(letter: DeadLetter, target: Target, data: bytes) -> InboxMessage:
    """The checks a recipient makes before looking at any state; a failure here would only
    be dead-lettered again."""
    try:
        message = inbox_decoder.decode(data)
        if KIND_OF[type(message)].value != target.kind:
            raise ProtocolError(f"a {KIND_OF[type(message)]} message on a {target.kind} subject")
        check_message(message, target.recipient)
        sender = target.sender or claimed_sender(message, target.recipient)
        check_subject(
            message, participant=target.recipient, recipient=target.recipient, sender=sender
        )
    except (msgspec.DecodeError, ProtocolError) as exc:
        raise NotRetryable(
            f"dead letter {letter.seq} would be dead-lettered again at once: {exc}"
        ) from None
    return message
