"""The dead-letter stream: poison messages and items are kept there with their reason.

Storing one is idempotent (its Nats-Msg-Id is derived from where it came from, its reason and
its payload, so two instances dead-lettering the same thing store it once) and bounded (a few
attempts, then `DeadLetterFailed`), so a broken dead-letter stream never stalls an inbox.
"""

from __future__ import annotations

import asyncio
import hashlib

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import APIError, NoStreamResponseError

from eventsource.core.errors import DeadLetterFailed
from eventsource.core.subjects import DEAD_LETTER_STREAM, dead_letter_subject

# "duplicate message id is in process": another publisher is storing the same letter right now.
DUPLICATE_IN_PROCESS = 10158
DEAD_LETTER_ATTEMPTS_MAX = 4
DEAD_LETTER_TIMEOUT_S = 2.0  # per attempt; all of them stay below the inbox's 10 s ack wait
DEAD_LETTER_PAUSE_S_MIN = 0.1  # doubled after each failed attempt
DEAD_LETTER_PAUSE_S_MAX = 1.0
DETAIL_CHARS_MAX = 1000
PAYLOAD_MESSAGE = "message"  # the whole inbox message is poison
PAYLOAD_ITEM = "item"  # one item of it is; the others were processed


async def dead_letter(
    nc: Client,
    participant: str,
    source: Msg,
    reason: str,
    detail: str,
    *,
    payload: bytes | None = None,
) -> None:
    """Store a copy of `source` (or of one of its items, `payload`) with its reason.

    Returns once DEADLETTER holds it: a fresh PubAck, a duplicate PubAck (stored before, by
    this or another instance) and a persistent `10158` (another instance is storing the same
    letter) all count as stored.

    Raises `DeadLetterFailed` (an `InfrastructureError`) when it is still not stored after
    `DEAD_LETTER_ATTEMPTS_MAX` attempts, about 9 s at most (a missing stream fails at once on
    every attempt: about 0.7 s). Nothing is stored then. The caller must count and log it, leave
    `source` unacknowledged (or nak it with a delay) so JetStream delivers it again later,
    never term or ack it, and go on with the rest of its group. Raises nothing else.
    """
    body = source.data if payload is None else payload
    meta = source.metadata if source.reply else None
    where = f"{meta.stream}:{meta.sequence.stream}" if meta else source.subject
    msg_id = hashlib.blake2b(f"{where}|{reason}".encode() + body, digest_size=16).hexdigest()
    headers = {
        "Nats-Msg-Id": msg_id,
        "Natsbank-Reason": reason,
        "Natsbank-Detail": _one_line(detail),
        "Natsbank-Source": where,
        "Natsbank-Source-Subject": source.subject,
        "Natsbank-Payload": PAYLOAD_MESSAGE if payload is None else PAYLOAD_ITEM,
    }
    await _store(nc, dead_letter_subject(participant), body, headers, reason, where)


async def _store(
    nc: Client, subject: str, body: bytes, headers: dict[str, str], reason: str, where: str
) -> None:
    js = nc.jetstream()
    pause_s = DEAD_LETTER_PAUSE_S_MIN
    error: Exception | None = None
    for attempt in range(DEAD_LETTER_ATTEMPTS_MAX):
        if attempt:
            await asyncio.sleep(pause_s)
            pause_s = min(2 * pause_s, DEAD_LETTER_PAUSE_S_MAX)
        try:
            await js.publish(
                subject,
                body,
                headers=dict(headers),
                timeout=DEAD_LETTER_TIMEOUT_S,
                stream=DEAD_LETTER_STREAM,
            )
            return
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            # Also 10158: ask again, and the other publisher's letter answers as a duplicate.
            error = exc
    if isinstance(error, APIError) and error.err_code == DUPLICATE_IN_PROCESS:
        return  # still held by the other publisher, which stores it once
    raise DeadLetterFailed(
        f"dead letter {reason} of {where} not stored in {DEAD_LETTER_STREAM} after "
        f"{DEAD_LETTER_ATTEMPTS_MAX} attempts: {_describe(error)}",
        reason=reason,
        source=where,
    )


def _one_line(text: str) -> str:
    return text[:DETAIL_CHARS_MAX].replace("\r", " ").replace("\n", " ")


def _describe(error: Exception | None) -> str:
    if isinstance(error, NoStreamResponseError):
        return "no stream answered (DEADLETTER missing, or without a leader)"
    if isinstance(error, APIError):
        return f"{error.description} (err_code {error.err_code})"
    return str(error) or type(error).__name__
