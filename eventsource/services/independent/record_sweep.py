"""Read the latest event of each of one participant's transfer records from the ledger: all of
them on the first read, then only the records that changed since the previous read, so a sweep
costs what the ledger gained, not its history."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import AnyTransferEvent, transfer_event_decoder
from eventsource.core.quarantine import decode_each
from eventsource.core.subjects import key_of_subject, ledger_stream, state_subject

log = logging.getLogger("natsbank.sweep")


class RecordSweep:
    def __init__(self, nc: Client, participant: str, partition: int, *, incoming: bool) -> None:
        self.nc = nc
        self.partition = partition
        self.filters = [state_subject(partition, f"{participant}.out.>")]
        if incoming:
            self.filters.append(state_subject(partition, f"{participant}.in.>"))
        self.swept_to: int | None = None  # the ledger sequence the next read starts from
        self.quarantined: set[str] = set()  # records read whose latest event does not decode

    async def changed(self) -> dict[str, AnyTransferEvent]:
        """Record key -> its latest event (among those read)."""
        stream = ledger_stream(self.partition)
        if self.swept_to is None:
            reading = read_messages(self.nc, stream, self.filters, last_per_subject=True)
        else:
            reading = read_messages(self.nc, stream, self.filters, start_seq=self.swept_to)
        latest: dict[str, bytes] = {}
        async for msg in reading:
            self.swept_to = max(self.swept_to or 1, msg.seq + 1)
            if (key := key_of_subject(msg.subject)) is not None:
                latest[key] = msg.data
        events, quarantined = decode_each(latest, transfer_event_decoder.decode)
        for record in quarantined:  # never decided on; the sweep goes on with the others
            log.warning("%s", record.describe())
        self.quarantined |= {record.key for record in quarantined}
        return events
