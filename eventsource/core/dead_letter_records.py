"""What an operator sees of a dead letter: what arrived, why it was refused, where it came from,
and whether it was republished since. Pure: built from a stored message's subject and headers."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from eventsource.core.errors import DeadLetterReason
from eventsource.core.messages import inbox_decoder
from eventsource.core.subjects import parse_dead_letter_subject

# The headers `adapters/dead_letters.py` writes (docs/PROTOCOL.md section 10).
REASON = "Natsbank-Reason"
DETAIL = "Natsbank-Detail"
SOURCE = "Natsbank-Source"
SOURCE_SUBJECT = "Natsbank-Source-Subject"
PAYLOAD = "Natsbank-Payload"
MSG_ID = "Nats-Msg-Id"
# On a retry record (`nb.dlq.<P>.retried.<seq>`): where the letter was republished.
REPUBLISHED = "Natsbank-Republished"
REPUBLISHED_SUBJECT = "Natsbank-Republished-Subject"
MESSAGE = "message"
ITEM = "item"


class Retried(msgspec.Struct, frozen=True, kw_only=True):
    """The letter was republished as message `seq` of `stream`, at `at_ms`."""

    stream: str
    seq: int
    subject: str
    at_ms: int


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    seq: int  # in the DEADLETTER stream: what `show` and `retry` take
    at_ms: int
    participant: str  # whose service refused it
    reason: str
    detail: str
    source: str  # `<stream>:<sequence>` of the inbox message that carried it, or a core subject
    source_subject: str
    payload_kind: str | None  # MESSAGE, ITEM, or None when not recorded and not yet inferred
    size: int  # bytes of the payload
    msg_id: str = ""
    retried: Retried | None = None


class RetryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a retry record (`nb.dlq.<P>.retried.<seq>`), for readers with natscli;
    natsbank reads its headers, which a headers-only listing also gets."""

    dead_letter: int
    stream: str
    seq: int
    subject: str


RETRY_OF_HEADER = "Natsbank-Retry-Of"  # on a message `dead-letters retry` republished


def letter_from(
    seq: int, at_ms: int, subject: str, headers: dict[str, str] | None, size: int
) -> DeadLetter | None:
    """The dead letter stored as message `seq`, or None if that message is not one."""
    parsed = parse_dead_letter_subject(subject)
    if parsed is None or parsed[1] is not None:
        return None
    headers = headers or {}
    kind = headers.get(PAYLOAD)
    return DeadLetter(
        seq=seq,
        at_ms=at_ms,
        participant=parsed[0],
        reason=headers.get(REASON, ""),
        detail=headers.get(DETAIL, ""),
        source=headers.get(SOURCE, ""),
        source_subject=headers.get(SOURCE_SUBJECT, ""),
        payload_kind=kind if kind in (MESSAGE, ITEM) else None,
        size=size,
        msg_id=headers.get(MSG_ID, ""),
    )


def retried_from(headers: dict[str, str] | None, at_ms: int) -> Retried | None:
    """The retry record stored with these headers at `at_ms`; None if they are not one."""
    position = source_position((headers or {}).get(REPUBLISHED, ""))
    if position is None:
        return None
    subject = (headers or {}).get(REPUBLISHED_SUBJECT, "")
    return Retried(stream=position[0], seq=position[1], subject=subject, at_ms=at_ms)


def with_payload_kind(letter: DeadLetter, payload: bytes) -> DeadLetter:
    """Letters stored before `Natsbank-Payload` existed: a payload that decodes as an inbox
    message, or is undecodable, was the whole message; anything else was one item of one."""
    if letter.payload_kind is not None:
        return letter
    if letter.reason == DeadLetterReason.UNDECODABLE:
        return msgspec.structs.replace(letter, payload_kind=MESSAGE)
    try:
        inbox_decoder.decode(payload)
    except msgspec.DecodeError:
        return msgspec.structs.replace(letter, payload_kind=ITEM)
    return msgspec.structs.replace(letter, payload_kind=MESSAGE)


def source_position(source: str) -> tuple[str, int] | None:
    """(stream, sequence) of a JetStream source `<stream>:<sequence>`; None for a core one."""
    stream, colon, seq = source.rpartition(":")
    if not colon or not stream or not seq.isdigit() or "." in stream:
        return None
    return stream, int(seq)


@dataclass(frozen=True)
class LetterFilter:
    """`dead-letters list` filters; None matches everything."""

    reason: str | None = None
    participant: str | None = None
    since_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (self.reason is None or letter.reason == self.reason)
            and (self.participant is None or letter.participant == self.participant)
            and (self.since_ms is None or letter.at_ms >= self.since_ms)
        )
