"""Push a workload into the submitters' inboxes: pipelined publishes, transfers packed per
submitter into messages of up to `per_message`, paced to a target rate."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from ulid import ULID

from eventsource.core.errors import InfrastructureError
from eventsource.core.model import TransferRequest
from eventsource.services.client import Submitted


@dataclass
class LoadReport:
    submitted: int = 0
    acked: int = 0
    messages: int = 0
    first_ack: float = 0.0
    last_ack: float = 0.0
    acked_ids: list[tuple[str, str]] = field(default_factory=list)  # (submitter, transfer id)


async def push(
    submit: Callable[[str, list[TransferRequest]], Awaitable[Submitted]],
    transfers: list[TransferRequest],
    *,
    per_message: int = 50,
    rate: float | None = None,
    in_flight: int = 64,
    progress: Callable[[int], None] | None = None,
    retry_for: float = 120.0,
    mint_ids: bool = False,
) -> LoadReport:
    """Submit everything with `submit` (a ledger's); return once every message is ACKed.
    `rate` is transfers per second. `mint_ids`: each transfer gets a new id (a ULID) as it is
    sent, as a client mints one when it makes a transfer; a paced run's ids made up front would
    age, and past the live horizon be refused ID_EXPIRED (docs/PROTOCOL.md section 7)."""
    chunks: list[tuple[str, list[TransferRequest]]] = []
    by_submitter: dict[str, list[TransferRequest]] = defaultdict(list)
    for transfer in transfers:
        queue = by_submitter[transfer.debtor.participant]
        queue.append(transfer)
        if len(queue) >= per_message:
            chunks.append((transfer.debtor.participant, queue[:]))
            queue.clear()
    chunks.extend((s, q) for s, q in by_submitter.items() if q)
    report = LoadReport(submitted=len(transfers))
    gate = asyncio.Semaphore(in_flight)
    started = time.monotonic()

    async def send(submitter: str, chunk: list[TransferRequest]) -> None:
        # A leader election leaves a stream unwritable for several seconds: keep trying with
        # the same payload (same Nats-Msg-Id, so a publish that did land is not doubled).
        deadline = time.monotonic() + retry_for
        if mint_ids:
            chunk = [msgspec.structs.replace(t, id=str(ULID())) for t in chunk]
        try:
            for attempt in itertools.count(1):
                try:
                    ack = await submit(submitter, chunk)
                    break
                except InfrastructureError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(min(2.0, 0.2 * attempt))
        finally:
            gate.release()
        report.acked += len(chunk)
        report.messages += 1
        report.acked_ids.extend((submitter, transfer_id) for transfer_id in ack.ids)
        report.first_ack = report.first_ack or ack.acked_at
        report.last_ack = ack.acked_at
        if progress:
            progress(len(chunk))

    async with asyncio.TaskGroup() as tasks:
        sent = 0
        for submitter, chunk in chunks:
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await gate.acquire()
            tasks.create_task(send(submitter, chunk))
            sent += len(chunk)
    return report


STEADY_SLICE_S = 1.0  # a steady load makes and pushes its transfers one slice at a time


async def push_steady(
    submit: Callable[[str, list[TransferRequest]], Awaitable[Submitted]],
    make: Callable[[int, int], list[TransferRequest]],
    *,
    rate: float,
    seconds: float,
    per_message: int = 50,
    slice_s: float = STEADY_SLICE_S,
) -> LoadReport:
    """Offer `rate` transfers/s for `seconds`: slice i (`make(count, i)`) starts at i*slice_s
    and is paced by `push`, so only one slice of work exists at a time however long the run.
    A slice that ends late starts the next at once; the offered rate then falls below `rate`
    (the ACKs say by how much). The report's ids are not kept."""
    total = LoadReport()
    started = time.monotonic()
    for index in range(math.ceil(round(seconds / slice_s, 9))):
        await asyncio.sleep(max(0.0, started + index * slice_s - time.monotonic()))
        end_s = min((index + 1) * slice_s, seconds)
        count = round(end_s * rate) - round(index * slice_s * rate)
        if count < 1:
            continue
        part = await push(submit, make(count, index), per_message=per_message, rate=rate)
        total.submitted += part.submitted
        total.acked += part.acked
        total.messages += part.messages
        total.first_ack = total.first_ack or part.first_ack
        total.last_ack = part.last_ack or total.last_ack
    return total
