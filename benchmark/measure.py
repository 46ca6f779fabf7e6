"""Measure finished work from the ledger itself: server timestamps of the submission (ACK) and
of the receiver's confirmation (final on both sides). Nothing is added to the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram
from nats.aio.client import Client
from nats.js.errors import APIError

from benchmark.measure_archive import ArchivedRange, archive_paused, archived_below
from eventsource.adapters.jetstream import leader_last_sequence
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import transfer_event_decoder
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.protocol import Phase
from eventsource.core.shared.layout import (
    SHARED_STREAM,
    shared_subject,
    shared_transfer_decoder,
    submit_filter,
    submitter_of_submit_subject,
)
from eventsource.core.subjects import PREFIX, key_of_subject, ledger_stream, state_prefix
from eventsource.services.ledger import Ledger
from eventsource.settings import Store


@dataclass
class Measurement:
    completed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    causes: Counter = field(default_factory=Counter)
    first_ack_ns: int = 0
    last_final_ns: int = 0
    final_99_ns: int = 0  # when 99% of the transfers were final: the tail left out
    latency_ms: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 3_600_000, 3))
    unfinished: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(1e-9, (self.last_final_ns - self.first_ack_ns) / 1e9)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.completed else 0.0

    @property
    def throughput_99(self) -> float:
        """Transfers/s until 99% were final: what a few unlucky transfers (under message loss,
        waiting for a resend) do not dominate."""
        seconds = (self.final_99_ns - self.first_ack_ns) / 1e9
        return 0.99 * self.completed / seconds if self.completed and seconds > 0 else 0.0

    def percentile(self, p: float) -> float:
        return float(self.latency_ms.get_value_at_percentile(p)) if self.completed else 0.0


async def wait_quiescent(
    nc: Client,
    consumers: list[tuple[str, str]],
    *,
    timeout: float = 300.0,
    settle: float = 0.5,
) -> bool:
    """True once none of the (stream, durable) inbox consumers has pending or unacknowledged
    messages, seen twice in a row."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        busy = False
        try:
            for stream, durable in consumers:
                info = await js.consumer_info(stream, durable)
                if info.num_pending or info.num_ack_pending:
                    busy = True
                    break
        except (TimeoutError, APIError):  # a leader election in progress: not quiet yet
            busy = True
        calm = 0 if busy else calm + 1
        if calm >= 2:
            return True
        await asyncio.sleep(settle)
    return False


class Scan:
    """Submissions (ACK times) and final records, read incrementally: each call to `advance`
    reads only what the ledger gained since the last one, so polling costs no re-reads."""

    def __init__(self) -> None:
        self.acked: dict[tuple[str, str], int] = {}
        # (submitter, id) -> (server time, outcome, cause): not the event, so that millions fit.
        self.final: dict[tuple[str, str], tuple[int, str, str | None]] = {}

    async def advance(self, nc: Client) -> None:
        raise NotImplementedError

    def measurement(self, ids: set[tuple[str, str]] | None = None) -> Measurement:
        report = Measurement()
        acked, final = self.acked, self.final
        final_times = []
        for key in ids if ids is not None else set(acked):
            if key not in final or key not in acked:
                report.unfinished.append(key[1])
                continue
            ts, outcome, cause = final[key]
            report.completed += 1
            report.outcomes[outcome] += 1
            if cause:
                report.causes[cause] += 1
            report.first_ack_ns = min(report.first_ack_ns or acked[key], acked[key])
            report.last_final_ns = max(report.last_final_ns, ts)
            final_times.append(ts)
            report.latency_ms.record_value(max(1, (ts - acked[key]) // 1_000_000))
        if final_times:
            final_times.sort()
            report.final_99_ns = final_times[max(0, math.ceil(0.99 * len(final_times)) - 1)]
        return report

    def _acked(self, submitter: str, data: bytes, ts: int) -> None:
        message = inbox_decoder.decode(data)
        if isinstance(message, SubmitTransfers):
            for t in message.transfers:
                self._ack((sys.intern(submitter), t.id), ts)

    def _ack(self, key: tuple[str, str], ts: int) -> None:
        self.acked.setdefault(key, ts)

    def _final(self, key: tuple[str, str], ts: int, outcome: str, cause: str | None) -> None:
        self.final[key] = (ts, outcome, cause)


class LedgerScan(Scan):
    """The independent store: final when the receiver confirmed (both sides final)."""

    def __init__(self, partitions: int, start_seq: dict[int, int] | None = None) -> None:
        super().__init__()
        self.partitions = partitions
        self.next_seq: dict[int, int] = dict(start_seq or {})
        self.archived = [ArchivedRange(k) for k in range(partitions)]

    def filters(self, partition: int) -> list[str]:
        """Submissions, and both sides' transfer records (not the accounts)."""
        state = state_prefix(partition)
        return [f"{PREFIX}.{partition}.to.*.submit.>", f"{state}*.in.*.*", f"{state}*.out.*"]

    async def advance(self, nc: Client) -> None:
        """Read what each partition held when this call reached it, and no further: under a
        steady load a read that followed the writes could go on for as long as they do."""
        below = await archived_below(nc, self.partitions)
        for k in range(self.partitions):
            start = self.next_seq.get(k, 1)
            if start < below.get(k, 1):  # the archiver moved it out: read it from the archive
                filters = self.filters(k)
                async for message in self.archived[k].read(nc, start, below[k], filters):
                    self._take(message.subject, message.payload, message.time_ms * 1_000_000)
                start = self.next_seq[k] = below[k]
            until = await leader_last_sequence(nc, ledger_stream(k))
            if until < start:
                continue
            async with contextlib.aclosing(_read(nc, k, self.filters(k), start)) as messages:
                async for subject, data, ts, seq in messages:
                    self.next_seq[k] = seq + 1
                    self._take(subject, data, ts)
                    if seq >= until:
                        break

    def _take(self, subject: str, data: bytes, ts: int) -> None:
        if key_of_subject(subject) is None:
            self._acked(subject.split(".")[3], data, ts)
            return
        state = transfer_event_decoder.decode(data).state
        key = (sys.intern(state.transfer.debtor.participant), state.transfer.id)
        # No receiver confirms a transfer to an unknown participant: settled is final.
        if state.phase is Phase.CONFIRMED or (
            state.phase is Phase.SETTLED and state.cause == "UNKNOWN_PARTICIPANT"
        ):
            self._final(key, ts, str(state.outcome), state.cause and str(state.cause))


class SharedScan(Scan):
    """The shared store: final when the transfer's one record is written."""

    def __init__(self) -> None:
        super().__init__()
        self.next_seq = 1

    async def advance(self, nc: Client) -> None:
        filters = [submit_filter("*"), shared_subject("*.xfer.*")]
        async for msg in read_messages(nc, SHARED_STREAM, filters, start_seq=self.next_seq):
            self.next_seq = msg.seq + 1
            ts = msg.time_ns
            submitter = submitter_of_submit_subject(msg.subject)
            if submitter is not None:
                self._acked(submitter, msg.data, ts)
                continue
            state = shared_transfer_decoder.decode(msg.data).state
            key = (sys.intern(state.transfer.debtor.participant), state.transfer.id)
            cause = state.cause and str(state.cause)
            self.final.setdefault(key, (ts, str(state.outcome), cause))


def scan_of(ledger: Ledger) -> Scan:
    """The scan that reads `ledger`'s store."""
    return SharedScan() if ledger.store is Store.SHARED else LedgerScan(ledger.partitions)


async def _read(nc: Client, partition: int, filters: list[str], start: int):
    async for msg in read_messages(nc, ledger_stream(partition), filters, start_seq=start):
        yield msg.subject, msg.data, msg.time_ns, msg.seq


async def settle(
    ledger: Ledger,
    participants: list[str],
    ids: set[tuple[str, str]],
    *,
    timeout: float = 180.0,
    on_quiet: Callable[[], None] | None = None,
) -> Measurement:
    """Wait for quiet inboxes, then until every id is final (a consumer that just changed
    leader can look idle for a moment); give up after `timeout` and report what is left.
    `on_quiet` is called each time the inboxes are quiet, before the ledger is read: what the
    servers carried until then is the work's, what follows is the measurement's own reading."""
    deadline = time.monotonic() + timeout
    reading = scan_of(ledger)
    consumers = [c for p in participants for c in ledger.consumers(p)]
    while True:
        left = max(1.0, deadline - time.monotonic())
        await wait_quiescent(ledger.nc, consumers, timeout=left, settle=0.25)
        if on_quiet is not None:
            on_quiet()
        async with archive_paused(ledger.nc, ledger.partitions):
            await reading.advance(ledger.nc)
        measurement = reading.measurement(ids)
        if not measurement.unfinished or time.monotonic() > deadline:
            return measurement
        await asyncio.sleep(1.0)
