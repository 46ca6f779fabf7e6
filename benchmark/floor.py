"""The floor of the write pattern (issue 14, items 1 and 2): `python -m benchmark.floor`.

What natsbank's commits alone cost on this machine, with no decision, no read, no consumer and
no ack: the lowest latency and the highest rate any service built on this pattern could reach
here. It starts its own cluster with the project's launcher (3 nodes, R3, `sync_interval:
always` unless told otherwise) and one ledger-like stream per worker process (atomic batches
allowed). Each worker holds two banks, each bank one group-commit loop that commits one atomic
batch at a time (as an instance does under its engine's lock), through natsbank's own
`commit()`. A transfer is:

- a submission, a JetStream publish whose PubAck is the ACK (the latency starts there);
- hop 1 at the debtor's bank: its record (expected sequence 0) and the debtor's account;
- hop 2 at the creditor's bank: its record (expected 0) and the creditor's account;
- hop 3 at the debtor's bank: its record again (expected its hop-1 sequence) and the account:
  the outcome is final here (the latency ends);
- hop 4 at the creditor's bank: its record again (the confirm).

A bank's group writes each account it touches once, with the expected sequence of its last
write, as natsbank coalesces account changes per group. A hop hands the transfer to the next
bank's queue in memory: the floor has no delivery cost between hops, where natsbank has a
consumer's. So both figures are bounds: natsbank cannot be faster than this here.

It reports, like `bench --rate-sweep`: the peak (transfers pushed at once) and p50/p99/p99.9 of
ACK-to-final latency at shares of that peak. A command that reports figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hdrh.histogram import HdrHistogram
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from eventsource.adapters.batch_commit import commit
from eventsource.adapters.cluster import LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.core.workset import Write

ACCOUNTS_PER_BANK = 5  # as the bench's banks
PAYLOAD_BYTES = 700  # about a state event's payload in the bench (3,244 ledger bytes per transfer)
MAX_STEPS_PER_GROUP = 100  # steps per atomic batch, under the server's 1,000 messages a batch
FINAL_HOP = 3
HOPS = 4
LATENCY_MS_MAX = 600_000
STREAMS = ("floor0", "floor1")  # one per worker process, as the bench's two service processes


@dataclass
class Transfer:
    id: str
    debtor: int  # bank index within the worker
    creditor: int
    acked_at: float = 0.0
    seqs: dict[int, int] = field(default_factory=dict)  # bank -> its record's last sequence


class Bank:
    """One group-commit loop: all the steps waiting, one atomic batch, then the next hop."""

    def __init__(self, worker: Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.name = f"{worker.prefix}.b{index}"
        self.queue: list[tuple[Transfer, int]] = []
        self.wake = asyncio.Event()
        self.account_seqs: dict[int, int] = {}
        self.commits = 0
        self.messages = 0
        self.committing = False

    def put(self, transfer: Transfer, hop: int) -> None:
        self.queue.append((transfer, hop))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                group = self.queue[:MAX_STEPS_PER_GROUP]
                del self.queue[: len(group)]
                self.committing = True
                await self._commit(group)
                self.committing = False

    async def _commit(self, group: list[tuple[Transfer, int]]) -> None:
        payload = self.worker.payload
        writes = [
            Write(f"{self.name}.rec.{t.id}", payload, t.seqs.get(self.index, 0), t.id)
            for t, _ in group
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
            if hop == FINAL_HOP:
                self.worker.finished(transfer, now)
            if hop < HOPS:
                other = transfer.creditor if hop % 2 else transfer.debtor
                self.worker.banks[other].put(transfer, hop + 1)


class Worker:
    """One process: a stream, two banks, its own load."""

    def __init__(self, nc, stream: str, point: int, seed: int) -> None:
        self.nc = nc
        self.prefix = f"{stream}.p{point}"  # each point's subjects are new: expected 0 holds
        self.js = nc.jetstream()
        self.random = random.Random(seed)
        self.payload = bytes(self.random.getrandbits(8) for _ in range(PAYLOAD_BYTES))
        self.banks = [Bank(self, 0), Bank(self, 1)]
        self.accounts: dict[tuple[str, int], int] = {}
        self.histogram = HdrHistogram(1, LATENCY_MS_MAX, 3)
        self.done = 0
        self.all_done = asyncio.Event()
        self.final_at = 0.0
        self.expected = 0
        self.submissions = 0

    def account_of(self, transfer: Transfer, bank: int) -> int:
        key = (transfer.id, bank)
        if key not in self.accounts:
            self.accounts[key] = self.random.randrange(ACCOUNTS_PER_BANK)
        return self.accounts[key]

    def finished(self, transfer: Transfer, now: float) -> None:
        self.histogram.record_value(max(1, round((now - transfer.acked_at) * 1000)))
        self.done += 1
        if self.done >= self.expected:
            self.final_at = now
            self.all_done.set()

    async def _drained(self) -> None:
        """Every transfer final, then every bank idle (the confirms of hop 4 committed)."""
        await self.all_done.wait()
        while any(bank.queue or bank.committing for bank in self.banks):
            await asyncio.sleep(0.01)

    async def submit(self, n: int) -> None:
        debtor = n % 2
        transfer = Transfer(f"t{n}", debtor, 1 - debtor)
        await self.js.publish(f"{self.prefix}.b{debtor}.sub.{transfer.id}", self.payload)
        self.submissions += 1
        transfer.acked_at = time.monotonic()
        self.banks[debtor].put(transfer, 1)

    async def run(self, transfers: int, rate: float) -> dict:
        """Submit `transfers` (at `rate` per second; 0: all at once) and wait for every final."""
        self.expected = transfers
        loops = [asyncio.create_task(bank.run()) for bank in self.banks]
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
        done = asyncio.create_task(self._drained())
        await asyncio.wait([done, *loops], return_when=asyncio.FIRST_COMPLETED)
        seconds = self.final_at - started
        for loop in loops:
            if loop.done():
                loop.result()  # a bank's loop ended: its error
            loop.cancel()
        h = self.histogram
        return {
            "transfers": transfers,
            "seconds": round(seconds, 3),
            "completed_per_s": round(transfers / seconds, 1),
            "commits": sum(b.commits for b in self.banks),
            "messages": sum(b.messages for b in self.banks) + self.submissions,
            "histogram": h.encode().decode(),
            "cpu_s": round(time.process_time() - cpu_started, 3),
        }


async def _worker_main(url: str, stream: str, point: int, transfers: int, rate: float) -> None:
    nc = await connect(url, name=f"floor-{stream}")
    try:
        result = await Worker(nc, stream, point, seed=point).run(transfers, rate)
    finally:
        await nc.close()
    print(json.dumps(result))


async def _create_streams(url: str, streams: list[str], replicas: int) -> None:
    nc = await connect(url, name="floor-setup")
    js = nc.jetstream()
    for stream in streams:
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[f"{stream}.>"],
                storage=StorageType.FILE,
                num_replicas=replicas,
                allow_atomic=True,
                discard=DiscardPolicy.NEW,
            )
        )
    await nc.close()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _point(url: str, pids: list[int], point: int, transfers: int, rate: float) -> dict:
    """One run of every worker at once (each with half the transfers and half the rate)."""
    servers_before = sum(_cpu_seconds(pid) for pid in pids)
    share = (str(transfers // len(STREAMS)), str(rate / len(STREAMS)))
    worker = [sys.executable, "-m", "benchmark.floor", "--worker", url]
    procs = [
        subprocess.Popen([*worker, stream, str(point), *share], stdout=subprocess.PIPE)
        for stream in STREAMS
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"floor worker failed with {proc.returncode}")
        results.append(json.loads(out))
    servers_cpu = sum(_cpu_seconds(pid) for pid in pids) - servers_before
    merged = HdrHistogram(1, LATENCY_MS_MAX, 3)
    for result in results:
        merged.add(HdrHistogram.decode(result["histogram"].encode()))
    done = sum(r["transfers"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {
        "offered_per_s": round(rate, 1) if rate else "all at once",
        "transfers": done,
        "completed_per_s": round(done / seconds, 1),
        "p50_ms": merged.get_value_at_percentile(50),
        "p99_ms": merged.get_value_at_percentile(99),
        "p999_ms": merged.get_value_at_percentile(99.9),
        "commits_per_transfer": round(sum(r["commits"] for r in results) / done, 3),
        "messages_per_transfer": round(sum(r["messages"] for r in results) / done, 2),
        # cores busy over the point: the servers', and the workers' (Python: load and commits)
        "servers_cores": round(servers_cpu / seconds, 2),
        "workers_cores": round(sum(r["cpu_s"] for r in results) / seconds, 2),
    }


def measure(nodes: int, sync: str, transfers: int, shares: list[int], point_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="natsbank-floor-") as tmp:
        sync_interval = None if sync == "default" else sync
        with LocalCluster(Path(tmp), nodes, sync_interval=sync_interval) as cluster:
            url = cluster.url
            pids = [node.pid for node in cluster.nodes]
            asyncio.run(_create_streams(url, STREAMS, nodes))
            _point(url, pids, 0, min(2000, transfers), 0)  # warm-up: first blocks, connections
            peak = _point(url, pids, 1, transfers, 0)
            curve = []
            for point, share in enumerate(shares, start=2):
                rate = peak["completed_per_s"] * share / 100
                n = max(200, int(rate * point_s))
                curve.append({"share_of_peak": share, **_point(url, pids, point, n, rate)})
    return {"nodes": nodes, "replicas": nodes, "sync_interval": sync, "peak": peak, "curve": curve}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, stream, point, transfers, rate = sys.argv[2:7]
        asyncio.run(_worker_main(url, stream, int(point), int(transfers), float(rate)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, choices=(1, 3))
    parser.add_argument("--sync", default="always", help="sync_interval: always, or default")
    parser.add_argument("--transfers", type=int, default=20000, help="pushed at once: the peak")
    parser.add_argument("--shares", default="10,25,50,75", help="percent of the peak to offer")
    parser.add_argument("--point-seconds", type=float, default=10.0)
    args = parser.parse_args()
    shares = [int(s) for s in args.shares.split(",") if s.strip()]
    result = measure(args.nodes, args.sync, args.transfers, shares, args.point_seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
