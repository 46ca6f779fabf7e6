"""A whole run on the shared store, for tests and `bench --store shared`: provision, open and
fund accounts, push a workload, wait until every transfer has its record, measure, audit.
Latency is read from the stream's own timestamps: the submission (ACK) to the record (final)."""

from __future__ import annotations

import asyncio
import math
import time

from nats.aio.client import Client
from nats.js.errors import APIError

from eventsource.adapters.jetstream import connect
from eventsource.adapters.shared_provision import (
    apply_shared_topology,
    register_shared_participant,
)
from eventsource.adapters.stream_reader import read_messages
from eventsource.adapters.topology import Topology
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.shared_store import (
    SHARED_STREAM,
    TransferDecision,
    shared_consumer,
    shared_subject,
    shared_transfer_decoder,
    submit_subject,
    submitter_of_submit_subject,
)
from eventsource.services.accounts import open_account
from eventsource.services.audit_shared import audit_shared
from eventsource.services.load import push
from eventsource.services.measure import Measurement
from eventsource.services.scenario import ScenarioResult
from eventsource.services.workload import Bank, random_transfers


async def bootstrap_shared(
    url: str,
    banks: list[Bank],
    *,
    currency: str = "EUR",
    funding: str = "100000.00",
    topology: Topology | None = None,
) -> None:
    nc = await connect(url)
    try:
        topology = topology or Topology()
        await apply_shared_topology(nc, topology)
        for bank in banks:
            await register_shared_participant(nc, topology, bank.participant)
            for account in bank.accounts:
                await open_account(nc, 1, bank.participant, account, currency, funding, shared=True)
    finally:
        await nc.close()


async def wait_shared_quiescent(
    nc: Client, participants: list[str], *, timeout: float = 300.0, settle: float = 0.25
) -> bool:
    """True once no submission consumer has pending or unacknowledged messages (seen twice)."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        try:
            infos = [
                await js.consumer_info(SHARED_STREAM, shared_consumer(p)) for p in participants
            ]
            busy = any(i.num_pending or i.num_ack_pending for i in infos)
        except (TimeoutError, APIError):  # a leader election in progress: not quiet yet
            busy = True
        calm = 0 if busy else calm + 1
        if calm >= 2:
            return True
        await asyncio.sleep(settle)
    return False


class SharedScan:
    """Submissions (ACK times) and records (final times), read incrementally."""

    def __init__(self) -> None:
        self.acked: dict[tuple[str, str], int] = {}
        self.final: dict[tuple[str, str], tuple[int, TransferDecision]] = {}
        self.next_seq = 1

    async def advance(self, nc: Client) -> None:
        filters = [submit_subject("*", "*"), shared_subject("*.xfer.*")]
        async for msg in read_messages(nc, SHARED_STREAM, filters, start_seq=self.next_seq):
            self.next_seq = msg.metadata.sequence.stream + 1
            ts = int(msg.metadata.timestamp.timestamp() * 1e9)
            submitter = submitter_of_submit_subject(msg.subject)
            if submitter is None:
                state = shared_transfer_decoder.decode(msg.data).state
                self.final.setdefault(
                    (state.transfer.debtor.participant, state.transfer.id), (ts, state)
                )
                continue
            message = inbox_decoder.decode(msg.data)
            if isinstance(message, SubmitTransfers):
                for t in message.transfers:
                    self.acked.setdefault((submitter, t.id), ts)

    def measurement(self, ids: set[tuple[str, str]]) -> Measurement:
        report = Measurement()
        finals = []
        for key in ids:
            if key not in self.final or key not in self.acked:
                report.unfinished.append(key[1])
                continue
            ts, decision = self.final[key]
            acked = self.acked[key]
            report.completed += 1
            report.outcomes[str(decision.outcome)] += 1
            if decision.cause:
                report.causes[str(decision.cause)] += 1
            report.first_ack_ns = min(report.first_ack_ns or acked, acked)
            report.last_final_ns = max(report.last_final_ns, ts)
            finals.append(ts)
            report.latency_ms.record_value(max(1, (ts - acked) // 1_000_000))
        if finals:
            finals.sort()
            report.final_99_ns = finals[max(0, math.ceil(0.99 * len(finals)) - 1)]
        return report


async def settle_shared(
    nc: Client, participants: list[str], ids: set[tuple[str, str]], *, timeout: float = 180.0
) -> Measurement:
    """Wait for quiet inboxes, then until every id has its record, or `timeout` runs out."""
    deadline = time.monotonic() + timeout
    scan = SharedScan()
    while True:
        left = max(1.0, deadline - time.monotonic())
        await wait_shared_quiescent(nc, participants, timeout=left)
        await scan.advance(nc)
        measurement = scan.measurement(ids)
        if not measurement.unfinished or time.monotonic() > deadline:
            return measurement
        await asyncio.sleep(1.0)


async def drive_shared(
    url: str,
    banks: list[Bank],
    count: int,
    *,
    seed: int = 1,
    rate: float | None = None,
    reject_share: float = 0.05,
    progress=None,
    settle_timeout: float | None = None,
    per_message: int = 50,
) -> ScenarioResult:
    nc = await connect(url)
    try:
        work = random_transfers(banks, count, seed=seed, reject_share=reject_share)
        started = time.monotonic()
        report = await push(
            nc, 1, work, rate=rate, progress=progress, per_message=per_message, shared=True
        )
        measurement = await settle_shared(
            nc,
            [b.participant for b in banks],
            {(w.debtor.participant, w.id) for w in work},
            timeout=settle_timeout or max(120.0, count / 100),
        )
        wall = time.monotonic() - started
        checked = await audit_shared(nc, expect_final=True)
        quiet = not measurement.unfinished
        return ScenarioResult(count, report.acked, measurement, checked, quiet, wall)  # type: ignore[arg-type]
    finally:
        await nc.close()
