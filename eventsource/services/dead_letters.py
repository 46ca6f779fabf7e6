"""Dead letters for an operator: list them, show one, republish one once its cause is fixed.

What may be republished, and as what, is decided purely in `core/dead_letter_retry.py`; this
module reads what that needs from the stream leaders and writes the result.
"""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from eventsource.adapters import dead_letter_stream as stream
from eventsource.adapters.key_registry import registered_operator
from eventsource.core.dead_letter_records import (
    ITEM,
    DeadLetter,
    LetterFilter,
    source_position,
    with_payload_kind,
)
from eventsource.core.dead_letter_retry import (
    Target,
    retry_msg_id,
    retry_payload,
    retry_subject,
    retry_target,
)
from eventsource.core.errors import NotRetryable, UnknownDeadLetter
from eventsource.core.messages import Kind, inbox_decoder
from eventsource.core.subjects import DEAD_LETTER_STREAM

Listing = stream.Listing


class Shown(msgspec.Struct, frozen=True, kw_only=True):
    letter: DeadLetter
    payload: bytes


class RetryOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Where the letter went; `republished` is False when an earlier retry had already done it
    (its record, or the same Nats-Msg-Id within the duplicate window)."""

    letter: DeadLetter
    stream: str
    seq: int
    subject: str
    republished: bool


async def list_dead_letters(nc: Client, wanted: LetterFilter, limit: int) -> Listing:
    return await stream.list_letters(nc, wanted, limit)


async def show_dead_letter(nc: Client, seq: int) -> Shown:
    letter, payload = await _letter(nc, seq)
    retried = await stream.get_retried(nc, letter)
    return Shown(letter=msgspec.structs.replace(letter, retried=retried), payload=payload)


async def retry_dead_letter(nc: Client, seq: int) -> RetryOutcome:
    """Republish dead letter `seq` onto the inbox it came from, once.

    Raises UnknownDeadLetter, NotRetryable (with what to do instead), or InfrastructureError.
    """
    letter, payload = await _letter(nc, seq)
    retried = await stream.get_retried(nc, letter)
    if retried is not None:
        letter = msgspec.structs.replace(letter, retried=retried)
        return RetryOutcome(
            letter=letter,
            stream=retried.stream,
            seq=retried.seq,
            subject=retried.subject,
            republished=False,
        )
    target = retry_target(letter)
    await _require_reader(nc, target)
    carrier = await _carrier(nc, letter) if letter.payload_kind == ITEM else None
    data = retry_payload(letter, target, payload, carrier)
    subject = retry_subject(target, data)
    new_seq, duplicate = await stream.republish(
        nc,
        target.stream,
        subject,
        data,
        retry_msg_id(letter),
        letter.seq,
        await _operator_signature(nc, target, data),
    )
    await stream.record_retry(nc, letter, target.stream, new_seq, subject)
    return RetryOutcome(
        letter=letter,
        stream=target.stream,
        seq=new_seq,
        subject=subject,
        republished=not duplicate,
    )


async def _operator_signature(nc: Client, target: Target, data: bytes) -> dict | None:
    """A republished protocol message is the operator's act, not its sender's: the operator
    signs it (PROTOCOL.md section 12), and a recipient accepts that signature only on a message
    that names the dead letter it republishes. A submission needs none."""
    if target.kind == Kind.SUBMIT.value:
        return None
    sender = inbox_decoder.decode(data).sender  # checked by retry_payload: it decodes
    signer = await registered_operator(nc)
    return signer.message_headers(sender, target.recipient, target.kind, data)


async def _letter(nc: Client, seq: int) -> tuple[DeadLetter, bytes]:
    found = await stream.get_letter(nc, seq)
    if found is None:
        raise UnknownDeadLetter(f"no dead letter at sequence {seq} of {DEAD_LETTER_STREAM}")
    letter, payload = found
    return with_payload_kind(letter, payload), payload


async def _require_reader(nc: Client, target: Target) -> None:
    """A republished message nobody consumes would wait for ever: the recipient must be
    registered (which gives it its inbox consumer) before its letters are retried."""
    if not await stream.has_consumer(nc, target.stream, target.consumer):
        raise NotRetryable(
            f"{target.recipient} has no inbox consumer {target.consumer} on {target.stream}, "
            f"so nothing would read it: register it first (`natsbank accounts open "
            f"{target.recipient} ACCOUNT`), then retry"
        )


async def _carrier(nc: Client, letter: DeadLetter) -> bytes | None:
    """The stored inbox message that carried an item (the ledger keeps every message)."""
    position = source_position(letter.source)
    if position is None:
        return None
    stored = await stream.get_stored(nc, *position)
    return None if stored is None else (stored.data or b"")
