"""What a bank's own client does: submit transfers (the PubAck is the ACK) and read outcomes."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from nats.aio.client import Client

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.state_reader import decode_state
from eventsource.core.errors import InfrastructureError, RecordQuarantined
from eventsource.core.events import TransferState, encoder
from eventsource.core.limits import (
    MAX_ITEMS_PER_MESSAGE,
    SUBMIT_TIMEOUT_S,
    WAIT_FIRST_PAUSE_S,
    WAIT_PAUSE_MAX_S,
    WAIT_READS_PER_ROUND,
)
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import TransferRequest
from eventsource.core.quarantine import Quarantined, decode_stored
from eventsource.core.subjects import (
    incoming_key,
    ledger_stream,
    outgoing_key,
    partition_of,
    state_subject,
    submission_subject,
)
from eventsource.core.trace import HEADER as TRACE_HEADER
from eventsource.services.archived import Archives, no_archives

T = TypeVar("T")


@dataclass(frozen=True)
class Submitted:
    """The ACK: the transfers are durably in the submitter's inbox at `sequence`."""

    ids: list[str]
    sequence: int
    duplicate: bool
    acked_at: float
    traceparent: str | None = None


async def submit(
    nc: Client,
    partitions: int,
    submitter: str,
    requests: list[TransferRequest],
    *,
    traceparent: str | None = None,
) -> Submitted:
    """Submit into the submitter's ledger inbox (the independent store)."""
    k = partition_of(submitter, partitions)
    subject = submission_subject(k, submitter, submission_token(requests))
    return await publish_submission(nc, subject, requests, traceparent=traceparent)


def submission_token(requests: list[TransferRequest]) -> str:
    """The last subject token of a submission: the transfer id when it carries one."""
    return requests[0].id if len(requests) == 1 else uuid.uuid4().hex[:16]


async def publish_submission(
    nc: Client, subject: str, requests: list[TransferRequest], *, traceparent: str | None = None
) -> Submitted:
    """Publish one SubmitTransfers message; returns once JetStream has stored it (the ACK).
    A W3C `traceparent` goes on as a header: the services carry it to every phase."""
    if not 1 <= len(requests) <= MAX_ITEMS_PER_MESSAGE:
        raise ValueError(f"a submission carries 1 to {MAX_ITEMS_PER_MESSAGE} transfers")
    payload = encoder.encode(SubmitTransfers(transfers=requests))
    # Same content, same message id: a retried publish is deduplicated by JetStream; different
    # content under a reused transfer id passes and is refused by the service (ID_CONFLICT).
    msg_id = hashlib.blake2b(payload, digest_size=16).hexdigest()
    headers = {"Nats-Msg-Id": msg_id} | ({TRACE_HEADER: traceparent} if traceparent else {})
    publish = functools.partial(
        nc.jetstream().publish, subject, payload, headers=headers, timeout=SUBMIT_TIMEOUT_S
    )
    try:
        # Safe to repeat: the same bytes under the same Nats-Msg-Id are stored once within the
        # duplicate window (2 min, longer than the retry bound); past it, the transfer id is
        # still a permanent idempotency key for the service.
        ack = await transient_retry(publish, what=f"submission to {subject}")
    except InfrastructureError:
        raise
    except Exception as exc:
        raise InfrastructureError(f"submission was not acknowledged: {exc}") from None
    return Submitted(
        [r.id for r in requests], ack.seq, bool(ack.duplicate), time.time(), traceparent
    )


async def read_transfer(
    nc: Client,
    partitions: int,
    key_owner: str,
    key: str,
    archives: Archives = no_archives,
) -> tuple[TransferState, int] | None:
    """Exact read: the last event on the record's subject, from the stream leader; else the
    archive's final event of it (at sequence 0: it left the live ledger)."""
    k = partition_of(key_owner, partitions)
    last = await read_last(nc, ledger_stream(k), state_subject(k, key), leader=True)
    if last is None:
        archived = await archives(k).latest(key)
        if archived is None:
            return None
        last = (archived, 0)
    state = decode_stored(key, last[0], last[1], functools.partial(decode_state, key))
    if isinstance(state, Quarantined):
        raise RecordQuarantined(state.describe())
    assert isinstance(state, TransferState)
    return state, last[1]


async def transfer_views(
    nc: Client,
    partitions: int,
    submitter: str,
    transfer_id: str,
    archives: Archives = no_archives,
) -> tuple[tuple[TransferState, int] | None, tuple | None]:
    """Both sides' records of one transfer: the submitter's and, once there, the receiver's."""
    mine = await read_transfer(
        nc, partitions, submitter, outgoing_key(submitter, transfer_id), archives
    )
    theirs = None
    if mine is not None:
        receiver = mine[0].transfer.creditor.participant
        theirs = await read_transfer(
            nc, partitions, receiver, incoming_key(receiver, submitter, transfer_id), archives
        )
    return mine, theirs


async def wait_final(
    nc: Client,
    partitions: int,
    submitter: str,
    ids: list[str],
    *,
    timeout: float = 60.0,
    archives: Archives = no_archives,
) -> dict[str, TransferState]:
    """Poll the submitter's records until each id has its final outcome (or time runs out);
    a duplicate of an archived transfer is answered by the archive."""

    async def final(transfer_id: str) -> TransferState | None:
        key = outgoing_key(submitter, transfer_id)
        view = await read_transfer(nc, partitions, submitter, key, archives)
        return view[0] if view is not None and view[0].final else None

    return await poll_until_found(ids, final, timeout)


async def poll_until_found(
    ids: list[str], read: Callable[[str], Awaitable[T | None]], timeout: float
) -> dict[str, T]:
    """Read each id until it gives a value (or time runs out), in rounds of at most
    WAIT_READS_PER_ROUND reads, pausing a little longer after each round."""
    pending = set(ids)
    found: dict[str, T] = {}
    deadline = time.monotonic() + timeout
    pause = WAIT_FIRST_PAUSE_S
    while pending and time.monotonic() < deadline:
        batch = sorted(pending)[:WAIT_READS_PER_ROUND]
        values = await asyncio.gather(*(read(i) for i in batch))
        for transfer_id, value in zip(batch, values, strict=True):
            if value is not None:
                found[transfer_id] = value
                pending.discard(transfer_id)
        if pending:
            await asyncio.sleep(pause)
            pause = min(WAIT_PAUSE_MAX_S, pause * 1.5)
    return found
