"""The atomic batch commit, the one write of a decision (nats-server's atomic batch publish).
A commit is not retried as a whole, since its outcome may be unknown: `commit_checked` resolves
that for a batch whose first write expects a sequence, then retries through transient
unavailability (`adapters/retry.py`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from eventsource.adapters.jetstream import (
    WRONG_LAST_SEQUENCE,
    WRONG_LAST_SEQUENCE_IN_BATCH,
    leader_get,
    refusal,
)
from eventsource.adapters.retry import TRANSIENT_RETRY_SECONDS, transient_retry
from eventsource.core.errors import CommitUnknown, StaleState, TemporarilyUnavailable
from eventsource.core.limits import COMMIT_TIMEOUT_S, MAX_BATCH_MESSAGES
from eventsource.core.workset import Write


async def commit(nc: Client, writes: Sequence[Write], *, timeout: float = COMMIT_TIMEOUT_S) -> int:
    """Store `writes` as one atomic batch; return the stream sequence of the last message.

    The messages of a batch get consecutive sequences, so write i has `last - len + 1 + i`.
    TemporarilyUnavailable: refused as a whole (no responders, no leader), safe to repeat.
    CommitUnknown: no answer, it may have landed; re-read before repeating it.
    """
    if not writes:
        raise ValueError("empty batch")
    if len(writes) > MAX_BATCH_MESSAGES:
        raise ValueError(f"batch of {len(writes)} messages exceeds {MAX_BATCH_MESSAGES}")
    batch_id = uuid.uuid4().hex
    last = len(writes)
    try:
        for index, write in enumerate(writes, 1):
            headers = {
                **(write.headers or {}),
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(index),
            }
            if write.expected is not None:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(write.expected)
            if index < last:
                await nc.publish(write.subject, write.payload, headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await nc.request(write.subject, write.payload, headers=headers, timeout=timeout)
    except NoRespondersError:
        # The commit reached no stream (no leader yet): the batch was not stored.
        raise TemporarilyUnavailable("commit: no responders (no stream leader)") from None
    except (TimeoutError, NatsTimeout) as exc:
        raise CommitUnknown(str(exc) or type(exc).__name__) from None
    except nats.errors.ConnectionReconnectingError as exc:
        raise CommitUnknown("connection reconnecting") from exc
    ack = json.loads(reply.data)
    error = ack.get("error")
    if error:
        if error.get("err_code") in (WRONG_LAST_SEQUENCE, WRONG_LAST_SEQUENCE_IN_BATCH):
            raise StaleState(error.get("description", ""))
        raise refusal(error)(f"commit refused: {error.get('description')} ({error})")
    return int(ack["seq"])


async def commit_checked(
    nc: Client,
    stream: str,
    writes: Sequence[Write],
    *,
    what: str,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
    timeout: float = COMMIT_TIMEOUT_S,
) -> int:
    """`commit`, repeated through transient unavailability, and landed exactly once.

    Safe to repeat because the first write expects its subject's last sequence, so the batch
    can land at most once. After an unanswered commit, or a StaleState that our own earlier
    attempt may have caused, the first message after that sequence on the subject says which:
    this very payload (it landed: done), another writer's (StaleState), or none (not stored:
    repeat). The first payload must be unique to the call (accounts stamp a time and an id).
    """
    first = writes[0]
    if first.expected is None:
        raise ValueError("commit_checked needs an expected sequence on the first write")
    after = {"seq": first.expected + 1, "next_by_subj": first.subject}

    async def attempt() -> int:
        try:
            return await commit(nc, writes, timeout=timeout)
        except (StaleState, CommitUnknown) as exc:
            found = await leader_get(nc, stream, after, first.subject, timeout)
            if found is not None and found[0] == first.payload:
                return found[1] + len(writes) - 1
            if found is not None or isinstance(exc, StaleState):
                raise StaleState(f"{first.subject} moved past {first.expected}") from None
            raise TemporarilyUnavailable(f"commit unanswered ({exc}), not stored") from None

    return await transient_retry(attempt, what=what, retry_seconds=retry_seconds)
