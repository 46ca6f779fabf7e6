"""The audit's view of the archive: where each partition's live part starts, the state it
starts from, the money totals of what was archived, and the archived records the live part
points to. Nothing here reads an archived period's events: those were verified once, when
they were archived (services/archiver.py), and `audit --full` verifies them again.

While it reads, the audit holds every partition's archive lease, so that no archive run moves
a head (and purges) under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_lookup import ArchiveLookup
from eventsource.adapters.archive_meta import StreamLease, meta_bucket, read_head
from eventsource.adapters.tasks import stop_task
from eventsource.core.archive_head import Head, SnapshotEntry, Totals
from eventsource.core.errors import ArchiveError, TemporarilyUnavailable
from eventsource.core.events import TransferState, transfer_event_decoder
from eventsource.core.limits import ARCHIVE_LEASE_S
from eventsource.core.subjects import ledger_stream, partition_of
from eventsource.services.archiver import read_snapshot

AUDIT_LEASE_WAIT_S = 5 * ARCHIVE_LEASE_S  # an archive run in progress finishes well within it
AUDIT_LEASE_POLL_S = 0.2  # short: archivers release between runs and the gap must be seen


@dataclass
class PartitionArchive:
    stream: str
    head: Head = field(default_factory=Head)
    snapshot: list[SnapshotEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what the head check found

    @property
    def archived(self) -> bool:
        return self.head.period > 0


@dataclass
class ArchiveView:
    partitions: list[PartitionArchive]
    lookups: dict[str, ArchiveLookup]

    @property
    def totals(self) -> list[Totals]:
        return [p.head.totals for p in self.partitions]

    async def record(self, key: str, partitions: int) -> TransferState | None:
        """A record that is not live: its archived final state, if its partition has one."""
        owner = key.split(".", 1)[0]
        part = self.partitions[partition_of(owner, partitions)]
        if not part.archived:
            return None
        data = await self.lookups[part.stream].latest(key)
        return None if data is None else transfer_event_decoder.decode(data).state


async def read_archive_view(nc: Client, partitions: int) -> ArchiveView:
    kv = await meta_bucket(nc)
    parts = []
    for k in range(partitions):
        stream = ledger_stream(k)
        head, _ = await read_head(kv, stream)
        part = PartitionArchive(stream, head)
        if part.archived:
            try:
                await archive_store.check_head(nc, k, head.period - 1, head.chain)
                part.snapshot = await read_snapshot(nc, k, head)
            except ArchiveError as exc:
                part.problems.append(f"{stream}: {exc} (I5)")
        parts.append(part)
    lookups = {p.stream: ArchiveLookup(nc, k) for k, p in enumerate(parts)}
    return ArchiveView(parts, lookups)


@contextlib.asynccontextmanager
async def archive_held(nc: Client, partitions: int) -> AsyncIterator[None]:
    """Hold every partition's archive lease (renewed) for the duration."""
    kv = await meta_bucket(nc)
    holder = f"audit-{uuid.uuid4().hex[:12]}"
    leases = [StreamLease(kv, ledger_stream(k), holder) for k in range(partitions)]
    loop = asyncio.get_running_loop()
    for lease in leases:
        deadline = loop.time() + AUDIT_LEASE_WAIT_S
        while not await lease.take():
            if loop.time() > deadline:
                raise TemporarilyUnavailable(
                    f"an archive run on {lease.stream} did not end within {AUDIT_LEASE_WAIT_S:g}"
                    " s: audit again later"
                )
            await asyncio.sleep(AUDIT_LEASE_POLL_S)

    async def renew() -> None:
        while True:
            await asyncio.sleep(ARCHIVE_LEASE_S / 3)
            for lease in leases:
                await lease.renew()

    keeper = asyncio.create_task(renew())
    try:
        yield
    finally:
        await stop_task(keeper)
        for lease in leases:
            await lease.release()
