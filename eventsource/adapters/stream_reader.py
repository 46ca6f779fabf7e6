"""Read a whole stream (or the last message per subject) with an ephemeral consumer that
survives leader changes: on a transient error (`adapters/retry.py`) it is re-created where it
left off. A read is always safe to repeat."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import TRANSIENT_RETRY_SECONDS, Backoff, is_transient

CONSUMER_NOT_FOUND = 10014


async def read_messages(
    nc: Client,
    stream: str,
    filters: list[str] | None = None,
    *,
    start_seq: int = 1,
    last_per_subject: bool = False,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
    fetch: int = 2000,
) -> AsyncIterator[Msg]:
    """Every stored message (from `start_seq`), or with `last_per_subject` the latest per
    subject. Ends when the consumer has nothing pending. A failure is retried for up to
    `retry_seconds` since the last progress (since the start for a last-per-subject read,
    which starts over each time)."""
    js = nc.jetstream()
    next_seq = start_seq
    backoff = Backoff(f"read of stream {stream}", retry_seconds)
    while True:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
            if last_per_subject
            else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if last_per_subject else next_seq,
            filter_subjects=filters if filters and len(filters) > 1 else None,
            filter_subject=filters[0] if filters and len(filters) == 1 else None,
            inactive_threshold=30.0,
        )
        sub = None
        try:
            sub = await js.pull_subscribe(
                filters[0] if filters and len(filters) == 1 else "", stream=stream, config=config
            )
            remaining = (await sub.consumer_info()).num_pending
            while remaining > 0:
                msgs = await sub.fetch(min(remaining, fetch), timeout=5.0)
                for msg in msgs:
                    yield msg
                    next_seq = msg.metadata.sequence.stream + 1
                if msgs and not last_per_subject:
                    backoff.restart()
                remaining = msgs[-1].metadata.num_pending if msgs else 0
            return
        except NotFoundError as exc:
            if exc.err_code != CONSUMER_NOT_FOUND:
                raise  # the stream itself is missing
            error: Exception = exc  # our ephemeral consumer was lost with its server
        except Exception as exc:
            if not is_transient(exc):
                raise
            error = exc
        finally:
            if sub is not None:
                with contextlib.suppress(Exception):  # it may be gone with its server
                    await sub.unsubscribe()
        # A full stream read resumes after the last message it yielded. A last-per-subject read
        # starts over; its callers keep a dict, so repeats are harmless.
        await backoff.pause(error)
