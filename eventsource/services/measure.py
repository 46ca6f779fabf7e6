"""Measure finished work from the ledger itself: server timestamps of the submission (ACK) and
of the receiver's confirmation (final on both sides). Nothing is added to the hot path."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram
from nats.aio.client import Client
from nats.js.errors import APIError

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import transfer_event_decoder
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.protocol import Phase
from eventsource.core.subjects import (
    PREFIX,
    inbox_consumer,
    key_of_subject,
    ledger_stream,
    state_prefix,
)


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
    partitions: int,
    participants: list[str],
    *,
    timeout: float = 300.0,
    settle: float = 0.5,
) -> bool:
    """True once no inbox consumer has pending or unacknowledged messages (seen twice)."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        busy = False
        try:
            for k in range(partitions):
                for p in participants:
                    info = await js.consumer_info(ledger_stream(k), inbox_consumer(p, k))
                    if info.num_pending or info.num_ack_pending:
                        busy = True
                        break
                if busy:
                    break
        except (TimeoutError, APIError):  # a leader election in progress: not quiet yet
            busy = True
        calm = 0 if busy else calm + 1
        if calm >= 2:
            return True
        await asyncio.sleep(settle)
    return False


class LedgerScan:
    """Submissions (ACK times) and final records, read incrementally: each call to `advance`
    reads only what the ledger gained since the last one, so polling costs no re-reads."""

    def __init__(self, start_seq: dict[int, int] | None = None) -> None:
        self.acked: dict[tuple[str, str], int] = {}
        # (submitter, id) -> (server time, outcome, cause): not the event, so that millions fit.
        self.final: dict[tuple[str, str], tuple[int, str, str | None]] = {}
        self.next_seq: dict[int, int] = dict(start_seq or {})

    async def advance(self, nc: Client, partitions: int) -> None:
        for k in range(partitions):
            async for subject, data, ts, seq in _read(nc, k, self.next_seq.get(k, 1)):
                self.next_seq[k] = seq + 1
                self._take(subject, data, ts)

    def _take(self, subject: str, data: bytes, ts: int) -> None:
        if key_of_subject(subject) is None:
            message = inbox_decoder.decode(data)
            if isinstance(message, SubmitTransfers):
                for t in message.transfers:
                    self.acked.setdefault((sys.intern(subject.split(".")[3]), t.id), ts)
            return
        state = transfer_event_decoder.decode(data).state
        key = (sys.intern(state.transfer.debtor.participant), state.transfer.id)
        # No receiver confirms a transfer to an unknown participant: settled is final.
        if state.phase is Phase.CONFIRMED or (
            state.phase is Phase.SETTLED and state.cause == "UNKNOWN_PARTICIPANT"
        ):
            self.final[key] = (ts, str(state.outcome), state.cause and str(state.cause))

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


async def scan(
    nc: Client,
    partitions: int,
    ids: set[tuple[str, str]] | None = None,
    *,
    start_seq: dict[int, int] | None = None,
) -> Measurement:
    """Fold submissions and final records into latencies. `ids`: (submitter, id) to account for."""
    ledger = LedgerScan(start_seq)
    await ledger.advance(nc, partitions)
    return ledger.measurement(ids)


async def _read(nc: Client, partition: int, start: int):
    state = state_prefix(partition)
    filters = [f"{PREFIX}.{partition}.to.*.submit.*", f"{state}*.in.*.*", f"{state}*.out.*"]
    async for msg in read_messages(nc, ledger_stream(partition), filters, start_seq=start):
        ts = int(msg.metadata.timestamp.timestamp() * 1e9)
        yield msg.subject, msg.data, ts, msg.metadata.sequence.stream


async def settle(
    nc: Client,
    partitions: int,
    participants: list[str],
    ids: set[tuple[str, str]],
    *,
    timeout: float = 180.0,
) -> Measurement:
    """Wait for quiet inboxes, then until every id is final (a consumer that just changed
    leader can look idle for a moment); give up after `timeout` and report what is left."""
    deadline = time.monotonic() + timeout
    ledger = LedgerScan()
    while True:
        await wait_quiescent(
            nc, partitions, participants, timeout=max(1.0, deadline - time.monotonic()), settle=0.25
        )
        await ledger.advance(nc, partitions)
        measurement = ledger.measurement(ids)
        if not measurement.unfinished or time.monotonic() > deadline:
            return measurement
        await asyncio.sleep(1.0)
