"""Read a whole stream (or the last message per subject) exactly, with ephemeral consumers.

An ephemeral consumer is placed by the meta leader on a random replica of the stream (R1, not
necessarily the stream leader) and reads that replica's copy. A replica that restarted and is
catching up holds a prefix of the stream, and its consumer reports "nothing pending" at the end
of that prefix (nats-server 2.15.1: one placed on a follower just restarted reported 295,740
messages while the leader had 314,501; `accounts list` then showed old balances). So
a read first asks the stream leader how far the stream goes (`leader_last_sequence`), and ends
only once it got that far; short of it, it goes on from where it stopped with a new consumer,
after a pause, within a bound. The same resumption survives leader changes and lost consumers
(`adapters/retry.py`). A read is always safe to repeat.

A connection that may not create consumers (every credential under authorization) reads with
batched direct gets instead (`adapters/direct_reader.py`): same messages, same exactness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from eventsource.adapters.direct_reader import StoredMessage, read_by_direct_get
from eventsource.adapters.jetstream import leader_last_sequence, stream_state
from eventsource.adapters.retry import TRANSIENT_RETRY_SECONDS, Backoff, is_transient
from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.errors import ReplicaBehind
from eventsource.core.limits import (
    READ_CONSUMER_INACTIVE_S,
    STREAM_READ_FETCH,
    STREAM_READ_FETCH_WAIT_S,
)

CONSUMER_NOT_FOUND = 10014
ACK_V1_TOKENS = 9
PURGE_REREADS_MAX = 3  # archive runs are minutes apart: one re-read is almost always enough


@dataclass
class _Cursor:
    """Where a read stands: the highest sequence it has handed out, and whether it still has
    to take the last message per subject (before that pass ends, nothing counts as read)."""

    reached: int
    last_per_subject: bool

    def config(self, filters: list[str] | None) -> ConsumerConfig:
        return ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
            if self.last_per_subject
            else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=None if self.last_per_subject else self.reached + 1,
            filter_subjects=filters if filters and len(filters) > 1 else None,
            filter_subject=filters[0] if filters and len(filters) == 1 else None,
            inactive_threshold=READ_CONSUMER_INACTIVE_S,
        )


async def read_messages(
    nc: Client,
    stream: str,
    filters: list[str] | None = None,
    *,
    start_seq: int = 1,
    last_per_subject: bool = False,
    retry_seconds: float = TRANSIENT_RETRY_SECONDS,
    fetch: int = STREAM_READ_FETCH,
) -> AsyncIterator[StoredMessage]:
    """Every stored message (from `start_seq`) in stream order, or with `last_per_subject` the
    latest per subject, then any later ones in order: keep the last one seen per subject.

    Exact: it ends only after a message at or past the leader's last matching sequence, taken
    before the read (no message matches: nothing to reach). A failure or a short read is
    retried for up to `retry_seconds` since the last progress; then InfrastructureError.
    """
    if reads_by_direct_get(nc):
        reading = read_by_direct_get(
            nc, stream, filters, start_seq=start_seq, retry_seconds=retry_seconds, fetch=fetch
        )
        async for stored in reading:
            yield stored
        return
    target = await leader_last_sequence(nc, stream, filters, retry_seconds=retry_seconds)
    cursor = _Cursor(start_seq - 1, last_per_subject)
    backoff = Backoff(f"read of stream {stream}", retry_seconds)
    purged = await purge_mark(nc, stream) if last_per_subject else None
    rereads = 0
    while True:
        before = cursor.reached
        try:
            async for msg in _one_pass(nc, stream, filters, cursor, fetch):
                yield msg
            if cursor.reached >= target and purged is not None:
                now = await purge_mark(nc, stream)
                if now != purged and rereads < PURGE_REREADS_MAX:
                    # An archive run purged under the read: a key's last message may have gone
                    # before it was delivered (its carried copy is past the target). Again.
                    rereads += 1
                    purged, target = now, await leader_last_sequence(nc, stream, filters)
                    cursor = _Cursor(start_seq - 1, last_per_subject)
                    continue
            if cursor.reached >= target:
                return
            error: Exception = ReplicaBehind(
                f"a replica behind the leader answered: read reached sequence "
                f"{cursor.reached} of {target}"
            )
        except NotFoundError as exc:
            if exc.err_code != CONSUMER_NOT_FOUND:
                raise  # the stream itself is missing
            error = exc  # our ephemeral consumer was lost with its server
        except Exception as exc:
            if not is_transient(exc):
                raise
            error = exc
        if cursor.last_per_subject:
            cursor.reached = start_seq - 1  # a cut-short first pass counts for nothing
        elif cursor.reached > before:
            backoff.restart()
        await backoff.pause(error)


def delivery_ns(reply: str) -> int:
    """The stored time from a JetStream delivery's reply subject, exactly (nats-py's
    `metadata.timestamp` goes through a float): `$JS.ACK.<stream>.<consumer>.<delivered>.
    <sseq>.<cseq>.<ns>.<pending>`, or the form with domain and account hash after ACK."""
    tokens = reply.split(".")
    return int(tokens[7] if len(tokens) == ACK_V1_TOKENS else tokens[9])


def reads_by_direct_get(nc: Client) -> bool:
    """Whether this connection reads without consumers (`adapters/jetstream.connect`)."""
    return bool(getattr(nc, "reads_by_direct_get", False))


async def purge_mark(nc: Client, stream: str) -> tuple[int, int]:
    """(first sequence, interior deletes) of the stream, from its leader: on a ledger stream
    (deny delete, no limits) only a purge by the archiver changes them."""
    state = await stream_state(nc, stream)
    return int(state["first_seq"]), int(state.get("num_deleted", 0))


async def _one_pass(
    nc: Client, stream: str, filters: list[str] | None, cursor: _Cursor, fetch: int
) -> AsyncIterator[StoredMessage]:
    """What one ephemeral consumer has, up to its "nothing pending". A last-per-subject pass
    that got that far is done: what follows is read from the sequence after it."""
    js = nc.jetstream()
    sub = None
    try:
        bind = filters[0] if filters and len(filters) == 1 else ""
        sub = await js.pull_subscribe(bind, stream=stream, config=cursor.config(filters))
        remaining = (await sub.consumer_info()).num_pending
        while remaining > 0:
            msgs = await sub.fetch(min(remaining, fetch), timeout=STREAM_READ_FETCH_WAIT_S)
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                cursor.reached = max(cursor.reached, seq)
                yield StoredMessage(
                    msg.subject, msg.data, seq, delivery_ns(msg.reply), msg.headers or {}
                )
            remaining = msgs[-1].metadata.num_pending if msgs else 0
        cursor.last_per_subject = False
    finally:
        await unsubscribe_quietly(sub)
