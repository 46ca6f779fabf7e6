"""Read a stream exactly without a consumer: batched direct gets (ADR-31), for credentials that
may not create consumers (every credential under authorization: core/permissions.py).

A batch request `{"seq": s, "next_by_subj": filter, "batch": n}` on the JSON form
`DIRECT.GET.<stream>` is answered by one replica with up to n messages in stream order, then an
end-of-batch (204) carrying how many more match. A replica may be behind its leader (it serves
direct gets while catching up), so a walk ends only once it reached the leader's last matching
sequence, read before the walk (`leader_last_sequence`, a leader get); short of it, it pauses
and goes on from where it stopped, within a bound. A walk reads every message from its start
(never "last per subject": the caller keeps the last one it saw per key), and past the target
to the end the replica has, so a carried copy the archiver appended while the walk ran is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.aio.client import Client

from eventsource.adapters.jetstream import api_subject, leader_last_sequence
from eventsource.adapters.retry import (
    TRANSIENT_RETRY_SECONDS,
    Backoff,
    is_transient,
    transient_retry,
)
from eventsource.core.errors import InfrastructureError, ReplicaBehind, TemporarilyUnavailable
from eventsource.core.limits import STREAM_READ_FETCH, STREAM_READ_FETCH_WAIT_S

STATUS_END_OF_BATCH = "204"
STATUS_NOT_FOUND = "404"
STATUS_NO_RESPONDERS = "503"


@dataclass(frozen=True)
class StoredMessage:
    """One stored message as a read hands it out, whichever way it was read."""

    subject: str
    data: bytes
    seq: int
    time_ns: int  # when the stream stored it, exactly (nanoseconds since the epoch)
    headers: dict[str, str] = field(default_factory=dict)


def stamp_ns(stamp: str) -> int:
    """`Nats-Time-Stamp` (RFC 3339, UTC, up to nanoseconds) exactly: datetime keeps only
    microseconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


@dataclass
class _Batch:
    messages: list[StoredMessage]
    pending: int  # matching messages after the batch, as the replica answered


async def read_by_direct_get(
    nc: Client,
    stream: str,
    filters: Sequence[str] | None = None,
    *,
    start_seq: int = 1,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
    fetch: int = STREAM_READ_FETCH,
) -> AsyncIterator[StoredMessage]:
    """Every stored message from `start_seq`, in stream order per filter (filters one after the
    other). InfrastructureError once a failure or a short read outlasts `retry_seconds`."""
    for subject in filters or [None]:
        async for msg in _walk(nc, stream, subject, start_seq, retry_seconds, fetch):
            yield msg


async def _walk(
    nc: Client, stream: str, subject: str | None, start_seq: int, retry_seconds: float, fetch: int
) -> AsyncIterator[StoredMessage]:
    target = await leader_last_sequence(
        nc, stream, [subject] if subject else None, retry_seconds=retry_seconds
    )
    reached = start_seq - 1
    if target <= reached:
        return  # nothing stored that the read must see (or no such stream)
    backoff = Backoff(f"read of stream {stream}", retry_seconds)
    while True:
        try:
            batch = await _direct_batch(nc, stream, reached + 1, subject, fetch)
        except Exception as exc:
            if not is_transient(exc):
                raise
            await backoff.pause(exc)
            continue
        for msg in batch.messages:
            reached = msg.seq
            yield msg
        if batch.messages:
            backoff.restart()
        if batch.pending > 0:
            continue
        if reached >= target:
            return
        await backoff.pause(
            ReplicaBehind(
                f"a replica behind the leader answered: read reached {reached} of {target}"
            )
        )


async def count_from(nc: Client, stream: str, subject: str, seq: int) -> int:
    """How many messages on `subject` are stored at or after `seq`, as one replica answers
    (one batch get of one message: the message, then how many more match). Retried through
    transient unavailability."""

    async def ask() -> int:
        batch = await _direct_batch(nc, stream, seq, subject, 1)
        return len(batch.messages) + batch.pending

    return await transient_retry(ask, what=f"count of {subject} from {seq}")


async def _direct_batch(
    nc: Client, stream: str, seq: int, subject: str | None, fetch: int
) -> _Batch:
    request: dict = {"seq": seq, "batch": fetch}
    if subject:
        request["next_by_subj"] = subject
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(
            api_subject(nc, f"DIRECT.GET.{stream}"), json.dumps(request).encode(), reply=inbox
        )
        messages: list[StoredMessage] = []
        while True:
            reply = await sub.next_msg(timeout=STREAM_READ_FETCH_WAIT_S)
            headers = dict(reply.headers or {})
            status = headers.get("Status")
            if status is None:
                messages.append(_stored(headers, reply.data))
            elif status == STATUS_END_OF_BATCH:
                return _Batch(messages, int(headers.get("Nats-Num-Pending", 0)))
            elif status == STATUS_NOT_FOUND and not messages:
                return _Batch(messages, 0)  # nothing at or after `seq` on this replica
            elif status == STATUS_NO_RESPONDERS:
                raise TemporarilyUnavailable(f"direct get on {stream}: no responders")
            else:
                raise InfrastructureError(
                    f"direct get on {stream} refused: {status} {headers.get('Description', '')}"
                )
    finally:
        await sub.unsubscribe()


def _stored(headers: dict[str, str], data: bytes) -> StoredMessage:
    return StoredMessage(
        subject=headers["Nats-Subject"],
        data=data,
        seq=int(headers["Nats-Sequence"]),
        time_ns=stamp_ns(headers["Nats-Time-Stamp"]),
        headers=headers,
    )
