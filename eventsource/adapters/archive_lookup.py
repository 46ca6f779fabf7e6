"""A decider's and a client's view of the archive: the final event of a record that left the
live ledger, found through the archive's id directory (adapters/archive_store.py)."""

from __future__ import annotations

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.core.history import id_time_ms
from eventsource.core.subjects import transfer_id_of_key


class ArchiveLookup:
    def __init__(self, nc: Client, partition: int) -> None:
        self.nc = nc
        self.partition = partition

    async def latest(self, key: str) -> bytes | None:
        at = id_time_ms(transfer_id_of_key(key))
        if at is None:  # an id without a time was never admitted with a horizon
            return None
        return await archive_store.find_record(self.nc, self.partition, key, at)
