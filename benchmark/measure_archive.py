"""The bench's measurement with a finite live horizon: what the archiver already moved out of
the live ledger is read back from the archive, so that a run measures every transfer however
long it lasted. While the bench reads, it holds the archive leases (as `natsbank audit` does):
no archive run moves the line between archive and live ledger under it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_meta import existing_meta_bucket, read_head
from eventsource.core.archive_cut import subjects_overlap
from eventsource.core.archive_format import ArchivedMessage
from eventsource.core.subjects import ledger_stream
from eventsource.services.audit_archive import archive_held


@contextlib.asynccontextmanager
async def archive_paused(nc: Client, partitions: int) -> AsyncIterator[None]:
    """Hold every partition's archive lease if an archive exists; nothing otherwise."""
    if await existing_meta_bucket(nc) is None:
        yield
        return
    async with archive_held(nc, partitions):
        yield


async def archived_below(nc: Client, partitions: int) -> dict[int, int]:
    """Per partition, the sequence below which every message is in the archive (1: none)."""
    kv = await existing_meta_bucket(nc)
    if kv is None:
        return {}
    return {k: (await read_head(kv, ledger_stream(k)))[0].end_seq for k in range(partitions)}


class ArchivedRange:
    """Archived messages of one partition, read forward across calls: each period at most
    once, from the first one that ends after where the reader stands."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.period = 0  # every period before it ends at or below where the reader stands

    async def read(
        self, nc: Client, start: int, end: int, filters: list[str]
    ) -> AsyncIterator[ArchivedMessage]:
        """The archived messages `start <= seq < end` on a subject matching one of `filters`."""
        while start < end:
            manifest = await archive_store.read_manifest(nc, self.partition, self.period)
            if manifest is None:
                return  # not archived (yet): the live ledger holds the rest
            if manifest.end_seq > start:
                async for message in archive_store.read_period(nc, self.partition, self.period):
                    if start <= message.seq < end and any(
                        subjects_overlap(message.subject, f) for f in filters
                    ):
                        yield message
                start = manifest.end_seq
            if manifest.end_seq > end:
                return  # the rest of this period comes on the next call
            self.period += 1
