"""The dead-letter stream: poison messages are kept there with their reason, never retried."""

from __future__ import annotations

import functools
import hashlib

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.retry import transient_retry
from eventsource.core.subjects import dead_letter_subject


async def dead_letter(
    nc: Client,
    participant: str,
    source: Msg,
    reason: str,
    detail: str,
    *,
    payload: bytes | None = None,
) -> None:
    """Store a copy with its reason. Idempotent within the duplicate window (Nats-Msg-Id), so
    it is retried through transient unavailability."""
    body = source.data if payload is None else payload
    meta = source.metadata if source.reply else None
    where = f"{meta.stream}:{meta.sequence.stream}" if meta else source.subject
    msg_id = hashlib.blake2b(f"{where}|{reason}".encode() + body, digest_size=16).hexdigest()
    headers = {
        "Nats-Msg-Id": msg_id,
        "Natsbank-Reason": reason,
        "Natsbank-Detail": detail[:1000].replace("\r", " ").replace("\n", " "),
        "Natsbank-Source": where,
        "Natsbank-Source-Subject": source.subject,
    }
    publish = functools.partial(
        nc.jetstream().publish, dead_letter_subject(participant), body, headers=headers
    )
    await transient_retry(publish, what=f"dead letter {where} of {participant}")
