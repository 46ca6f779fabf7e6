"""One worker process of `python -m benchmark.floor`: a stream, two banks, its own load.

Each bank is one group-commit loop (one atomic batch at a time, through natsbank's `commit()`).
A step reaches a bank in one of two ways (`--hops`):

- `memory`: the bank that committed the step before hands it over in memory: no delivery cost;
- `consumers`: as in natsbank, the bank's durable pull consumer (R as the stream) delivers its
  submissions and the other bank's records, the loop fetches, commits, then acks each delivery.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError

from eventsource.adapters.batch_commit import commit
from eventsource.adapters.jetstream import connect
from eventsource.adapters.retry import transient_retry
from eventsource.core.workset import Write

ACCOUNTS_PER_BANK = 5  # as the bench's banks
PAYLOAD_BYTES = 700  # about a state event's payload in the bench (3,244 ledger bytes per transfer)
MAX_STEPS_PER_GROUP = 100  # steps per atomic batch, under the server's 1,000 messages a batch
FETCH_BATCH = 256  # deliveries per fetch, as a service's
FETCH_WAIT_S = 1.0
FETCH_FAILURES_MAX = 100  # refused fetches in a row before the worker gives up
FETCH_RETRY_PAUSE_S = 0.1
FINAL_HOP = 3
HOPS = 4
HOP_HEADER = "Floor-Hop"  # which hop committed a record (consumers: the next hop is one more)
LATENCY_MS_MAX = 600_000
HOP_MODES = ("memory", "consumers")


@dataclass
class Transfer:
    id: str
    debtor: int  # bank index within the worker
    creditor: int
    acked_at: float = 0.0
    seqs: dict[int, int] = field(default_factory=dict)  # bank -> its record's last sequence


def hop_of(hop: int) -> dict[str, str]:
    return {HOP_HEADER: str(hop)}


class Bank:
    """One group-commit loop: the steps waiting, one atomic batch, then the next hop."""

    def __init__(self, worker: Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.name = f"{worker.prefix}.b{index}"
        self.queue: list[tuple[Transfer, int]] = []
        self.wake = asyncio.Event()
        self.account_seqs: dict[int, int] = {}
        self.commits = 0
        self.messages = 0

    def put(self, transfer: Transfer, hop: int) -> None:
        self.queue.append((transfer, hop))
        self.wake.set()

    async def run(self) -> None:
        """Memory hops: commit whatever waits, group after group."""
        while not self.worker.stopping:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                group = self.queue[:MAX_STEPS_PER_GROUP]
                del self.queue[: len(group)]
                await self._commit(group)

    async def consume(self) -> None:
        """Consumer hops: fetch, commit the steps the deliveries call for, ack them."""
        other = 1 - self.index
        durable = f"{self.name.replace('.', '_')}_in"
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subjects=[f"{self.name}.sub.>", f"{self.worker.prefix}.b{other}.rec.>"],
        )
        # an R3 consumer may not answer at once under load; creating it again is a no-op
        await transient_retry(
            lambda: self.worker.js.add_consumer(self.worker.stream, config), what=durable
        )
        sub = await self.worker.js.pull_subscribe_bind(durable, stream=self.worker.stream)
        failures = 0
        while not self.worker.stopping:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_WAIT_S)
                failures = 0
            except TimeoutError:
                continue
            except APIError:  # 503 from an R3 consumer created a moment ago: not ready yet
                failures += 1
                if failures > FETCH_FAILURES_MAX:
                    raise
                await asyncio.sleep(FETCH_RETRY_PAUSE_S)
                continue
            steps = [self._step(msg) for msg in msgs]
            group = [step for step in steps if step[1] <= HOPS]
            for start in range(0, len(group), MAX_STEPS_PER_GROUP):
                await self._commit(group[start : start + MAX_STEPS_PER_GROUP])
            for msg in msgs:
                await msg.ack()

    def _step(self, msg) -> tuple[Transfer, int]:
        kind, transfer_id = msg.subject.split(".")[-2:]
        transfer = self.worker.transfers[transfer_id]
        if kind == "sub":
            return transfer, 1
        return transfer, int(msg.headers[HOP_HEADER]) + 1

    async def _commit(self, group: list[tuple[Transfer, int]]) -> None:
        payload = self.worker.payload
        writes = [
            Write(f"{self.name}.rec.{t.id}", payload, t.seqs.get(self.index, 0), t.id, hop_of(h))
            for t, h in group
        ]
        touched = sorted({self.worker.account_of(t, self.index) for t, _ in group})
        writes += [
            Write(f"{self.name}.acct.{a}", payload, self.account_seqs.get(a, 0), f"acct.{a}")
            for a in touched
        ]
        last = await commit(self.worker.nc, writes)
        first = last - len(writes) + 1
        for i, (transfer, _) in enumerate(group):
            transfer.seqs[self.index] = first + i
        for i, account in enumerate(touched, start=len(group)):
            self.account_seqs[account] = first + i
        self.commits += 1
        self.messages += len(writes)
        now = time.monotonic()
        for transfer, hop in group:
            self.worker.committed(transfer, hop, now)
            if hop < HOPS and self.worker.hops == "memory":
                other = transfer.creditor if hop % 2 else transfer.debtor
                self.worker.banks[other].put(transfer, hop + 1)


class Worker:
    """One process: a stream, two banks, its own load."""

    def __init__(self, nc, stream: str, point: int, hops: str) -> None:
        self.nc = nc
        self.stream = stream
        self.hops = hops
        self.prefix = f"{stream}.p{point}"  # each point's subjects are new: expected 0 holds
        self.js = nc.jetstream()
        self.random = random.Random(point)
        self.payload = bytes(self.random.getrandbits(8) for _ in range(PAYLOAD_BYTES))
        self.banks = [Bank(self, 0), Bank(self, 1)]
        self.transfers: dict[str, Transfer] = {}
        self.accounts: dict[tuple[str, int], int] = {}
        self.histogram = HdrHistogram(1, LATENCY_MS_MAX, 3)
        self.final = 0
        self.confirmed = 0
        self.expected = 0
        self.final_at = 0.0
        self.drained = asyncio.Event()
        self.submissions = 0
        self.stopping = False

    def account_of(self, transfer: Transfer, bank: int) -> int:
        key = (transfer.id, bank)
        if key not in self.accounts:
            self.accounts[key] = self.random.randrange(ACCOUNTS_PER_BANK)
        return self.accounts[key]

    def committed(self, transfer: Transfer, hop: int, now: float) -> None:
        """The latency ends at the final hop; the run once every confirm (hop 4) committed."""
        if hop == FINAL_HOP:
            self.histogram.record_value(max(1, round((now - transfer.acked_at) * 1000)))
            self.final += 1
            if self.final == self.expected:
                self.final_at = now
        elif hop == HOPS:
            self.confirmed += 1
            if self.confirmed == self.expected:
                self.drained.set()

    async def submit(self, n: int) -> None:
        debtor = n % 2
        transfer = Transfer(f"t{n}", debtor, 1 - debtor)
        self.transfers[transfer.id] = transfer
        await self.js.publish(f"{self.prefix}.b{debtor}.sub.{transfer.id}", self.payload)
        self.submissions += 1
        transfer.acked_at = time.monotonic()
        if self.hops == "memory":
            self.banks[debtor].put(transfer, 1)

    async def run(self, transfers: int, rate: float) -> dict:
        """Submit `transfers` (at `rate` per second; 0: all at once) and wait for every final."""
        self.expected = transfers
        loop = Bank.run if self.hops == "memory" else Bank.consume
        loops = [asyncio.create_task(loop(bank)) for bank in self.banks]
        started, cpu_started = time.monotonic(), time.process_time()
        pending = set()
        for n in range(transfers):
            if rate > 0:
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            task = asyncio.create_task(self.submit(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        drained = asyncio.create_task(self.drained.wait())
        await asyncio.wait([drained, *loops], return_when=asyncio.FIRST_COMPLETED)
        self.stopping = True
        for bank in self.banks:
            bank.wake.set()
        for task in loops:
            if task.done():
                task.result()  # a bank's loop ended: its error
        # a fetch ends within its wait: the loops end before the connection closes
        await asyncio.wait(loops, timeout=FETCH_WAIT_S * 3)
        for task in loops:
            task.cancel()
        seconds = self.final_at - started
        return {
            "transfers": transfers,
            "seconds": round(seconds, 3),
            "completed_per_s": round(transfers / seconds, 1),
            "commits": sum(b.commits for b in self.banks),
            "messages": sum(b.messages for b in self.banks) + self.submissions,
            "histogram": self.histogram.encode().decode(),
            "cpu_s": round(time.process_time() - cpu_started, 3),
        }


async def _main(url: str, stream: str, point: int, hops: str, transfers: int, rate: float):
    nc = await connect(url, name=f"floor-{stream}")
    try:
        result = await Worker(nc, stream, point, hops).run(transfers, rate)
    finally:
        await nc.close()
    print(json.dumps(result))


if __name__ == "__main__":
    url, stream, point, hops, transfers, rate = sys.argv[1:7]
    asyncio.run(_main(url, stream, int(point), hops, int(transfers), float(rate)))
