"""A projection that starts behind the live ledger's first message (a rebuild, a new
projection) first applies what the archive holds: every archived state event after its
position, period by period, through the same `apply` as live batches. The live consumer is
created before, at the position, so that nothing more is purged meanwhile (consumers hold
purging back, services/archiver.py), and its deliveries at or below the position the replay
reached are skipped like any redelivery."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_meta import existing_meta_bucket, read_head
from eventsource.core.errors import ArchiveError
from eventsource.core.subjects import ledger_stream
from projections.model import LedgerEvent, Undecodable, decode_row
from projections.store import ProjectionDb

log = logging.getLogger("natsbank.projector")
REPLAY_BATCH = 2000


async def replay_archive(
    nc: Client, store: ProjectionDb, partition: int, position: int, prefix: str
) -> int:
    """Apply the archived state events on subjects starting with `prefix` after `position`;
    returns the position reached (unchanged when the archive holds nothing after it)."""
    kv = await existing_meta_bucket(nc)
    if kv is None:
        return position
    stream = ledger_stream(partition)
    head, _ = await read_head(kv, stream)
    if head.period == 0 or position + 1 >= head.end_seq:
        return position
    first = await _period_holding(nc, partition, position + 1, head.period)
    log.info("%s: replaying the archive from period %d (position %d)", stream, first, position)
    for period in range(first, head.period):
        manifest = await archive_store.read_manifest(nc, partition, period)
        if manifest is None:
            raise ArchiveError(f"{stream}: period {period} has no manifest")
        events: list[LedgerEvent] = []
        async for message in archive_store.read_period(nc, partition, period):
            if message.seq <= position or not message.subject.startswith(prefix):
                continue
            try:
                events.append(
                    LedgerEvent(stream, message.seq, decode_row(message.subject, message.payload))
                )
            except Undecodable as exc:  # dead-lettered when it was live
                log.warning("%s: archived event %d skipped: %s", stream, message.seq, exc)
            if len(events) >= REPLAY_BATCH:
                await store.apply(stream, events[-1].seq, events)
                events = []
        await store.apply(stream, manifest.end_seq - 1, events)
        position = manifest.end_seq - 1
    return position


async def _period_holding(nc: Client, partition: int, seq: int, periods: int) -> int:
    """The period whose range holds `seq` (periods are contiguous): a binary search."""
    low, high = 0, periods - 1
    while low < high:
        middle = (low + high + 1) // 2
        manifest = await archive_store.read_manifest(nc, partition, middle)
        if manifest is None:
            raise ArchiveError(f"partition {partition}: period {middle} has no manifest")
        if manifest.first_seq <= seq:
            low = middle
        else:
            high = middle - 1
    return low
