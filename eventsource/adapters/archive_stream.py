"""What the archiver does to a live ledger stream: find its bounds and its cut by time, read its
consumers' floors, carry events forward, purge. Every call is answered by the stream leader
and retried through transient unavailability (adapters/retry.py)."""

from __future__ import annotations

import asyncio
import datetime
import functools
import json

from nats.aio.client import Client
from nats.js.api import AckPolicy
from nats.js.errors import APIError

from eventsource.adapters.jetstream import (
    WRONG_LAST_SEQUENCE,
    api_subject,
    first_sequence_from,
    read_last,
    stream_state,
)
from eventsource.adapters.retry import transient_retry
from eventsource.core.archive_cut import ConsumerFloor
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.archive_head import SnapshotEntry
from eventsource.core.errors import InfrastructureError
from eventsource.core.limits import ARCHIVE_CARRIES_IN_FLIGHT, READ_TIMEOUT_S
from eventsource.core.subjects import KeySpace


async def stream_bounds(nc: Client, stream: str) -> tuple[int, int]:
    """(first, last) sequence of the stream, from its leader."""
    state = await stream_state(nc, stream)
    return int(state["first_seq"]), int(state["last_seq"])


async def first_sequence_at(nc: Client, stream: str, time_ms: int, last_seq: int) -> int:
    """The first sequence stored at or after `time_ms` (STREAM.MSG.GET `start_time`, from the
    leader); past the last one if every message is older."""
    when = datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC)
    request = json.dumps({"start_time": when.isoformat().replace("+00:00", "Z")}).encode()

    async def get() -> int:
        reply = await nc.request(
            api_subject(nc, f"STREAM.MSG.GET.{stream}"), request, timeout=READ_TIMEOUT_S
        )
        body = json.loads(reply.data)
        error = body.get("error")
        if error and error.get("code") == 404:
            return last_seq + 1
        if error:
            raise InfrastructureError(f"read of {stream} by time failed: {error}")
        return int(body["message"]["seq"])

    return await transient_retry(get, what=f"read of {stream} by time")


async def consumer_floors(nc: Client, stream: str) -> tuple[list[str], list[ConsumerFloor]]:
    """The stream's purge groups (its subjects) and, per acknowledging consumer that still has
    something to read, the sequence of the first message it has not acknowledged (a leader
    read past its ack floor, per filter). A consumer without acks (an exact read's ephemeral
    one) holds nothing back: such reads are repeated, or hold the archive lease (the audit)."""
    js = nc.jetstream()
    info = await transient_retry(
        functools.partial(js.stream_info, stream), what=f"info of {stream}"
    )
    consumers = await transient_retry(
        functools.partial(js.consumers_info, stream), what=f"consumers of {stream}"
    )
    floors = []
    for consumer in consumers:
        config = consumer.config
        if config.ack_policy == AckPolicy.NONE:
            continue
        filters = tuple(
            config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
        )
        floor = (consumer.ack_floor.stream_seq or 0) if consumer.ack_floor else 0
        found = [await first_sequence_from(nc, stream, floor + 1, f) for f in filters or (">",)]
        unread = [seq for seq in found if seq is not None]
        if unread:
            floors.append(ConsumerFloor(consumer.name, filters, min(unread)))
    return list(info.config.subjects or []), floors


async def purge_groups(nc: Client, stream: str, ends: dict[str, int], end: int) -> None:
    """Purge each group below its end; one call for the whole stream when none is held back."""
    js = nc.jetstream()
    if all(e >= end for e in ends.values()):
        await transient_retry(
            functools.partial(js.purge_stream, stream, seq=end), what=f"purge of {stream}"
        )
        return
    for group, group_end in ends.items():
        if group_end > 1:
            await transient_retry(
                functools.partial(js.purge_stream, stream, seq=group_end, subject=group),
                what=f"purge of {group} in {stream}",
            )


async def carry_forward(nc: Client, space: KeySpace, entries: list[SnapshotEntry], end: int) -> int:
    """Copy forward, unchanged, the latest event of each key that must stay live and has not
    moved since before the cut; returns how many were copied. A key written meanwhile (its
    owner's service) needs no copy: the compare-and-set refuses it."""
    gate = asyncio.Semaphore(ARCHIVE_CARRIES_IN_FLIGHT)
    todo = [e for e in entries if e.seq < end]

    async def carry(entry: SnapshotEntry) -> bool:
        async with gate:
            subject = space.subject(entry.key)
            last = await read_last(nc, space.stream, subject, leader=True)
            if last is None or last[1] >= end:
                return False  # moved past the cut (or never live: nothing to keep)
            headers = {
                "Nats-Expected-Last-Subject-Sequence": str(last[1]),
                CARRIED_HEADER: str(last[1]),
            }
            return await _publish_expected(nc, subject, last[0], headers)

    done = await asyncio.gather(*(carry(e) for e in todo))
    return sum(done)


async def _publish_expected(nc: Client, subject: str, data: bytes, headers: dict) -> bool:
    js = nc.jetstream()

    async def publish() -> bool:
        try:
            await js.publish(subject, data, headers=headers)
            return True
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False  # its owner wrote it meanwhile: it outlives the cut on its own
            raise

    return await transient_retry(publish, what=f"carry of {subject}")
