"""The floor of the write pattern (issue 14, items 1 and 2): `python -m benchmark.floor`.

What natsbank's commits cost on this machine without the rest of natsbank: no decision, no
read, no signature, no separate load client. It starts its own cluster with the project's
launcher (3 nodes, R3, `sync_interval: always` unless told otherwise) and one ledger-like stream
per worker process (atomic batches allowed; benchmark/floor_worker.py). Each worker holds two
banks, each bank one group-commit loop that commits one atomic batch at a time (as an instance
does under its engine's lock), through natsbank's own `commit()`. A transfer is:

- a submission, a JetStream publish whose PubAck is the ACK (the latency starts there);
- hop 1 at the debtor's bank: its record (expected sequence 0) and the debtor's account;
- hop 2 at the creditor's bank: its record (expected 0) and the creditor's account;
- hop 3 at the debtor's bank: its record again (expected its hop-1 sequence) and the account:
  the outcome is final here (the latency ends);
- hop 4 at the creditor's bank: its record again (the confirm).

A bank's group writes each account it touches once, with the expected sequence of its last
write, as natsbank coalesces account changes per group. With `--hops memory` (the default) a
hop hands the transfer to the next bank in memory: no delivery cost, so both figures are bounds
that natsbank cannot beat here. With `--hops consumers` each bank's durable pull consumer
delivers its submissions and the other bank's records, as natsbank's inbox consumers do.

It reports, like `bench --rate-sweep`: the peak (transfers pushed at once) and p50/p99/p99.9 of
ACK-to-final latency at shares of that peak, with the cores the servers and the workers used.
A command that reports figures, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from hdrh.histogram import HdrHistogram
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from benchmark.floor_worker import HOP_MODES, LATENCY_MS_MAX
from eventsource.adapters.cluster import LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.retry import transient_retry

STREAMS = ("floor0", "floor1")  # one per worker process, as the bench's two service processes
WARMUP_TRANSFERS = 2000
POINT_SECONDS_MAX = 3600.0


async def _create_streams(url: str, streams: list[str], replicas: int) -> None:
    nc = await connect(url, name="floor-setup")
    js = nc.jetstream()
    for stream in streams:
        config = StreamConfig(
            name=stream,
            subjects=[f"{stream}.>"],
            storage=StorageType.FILE,
            num_replicas=replicas,
            allow_atomic=True,
            discard=DiscardPolicy.NEW,
        )
        # a cluster just started may not answer at once; creating the same stream is a no-op
        await transient_retry(lambda c=config: js.add_stream(c), what=f"creating {stream}")
    await nc.close()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _point(url: str, pids: list[int], hops: str, point: int, transfers: int, rate: float) -> dict:
    """One run of every worker at once (each with half the transfers and half the rate)."""
    servers_before = sum(_cpu_seconds(pid) for pid in pids)
    share = (str(transfers // len(STREAMS)), str(rate / len(STREAMS)))
    worker = [sys.executable, "-m", "benchmark.floor_worker", url]
    procs = [
        subprocess.Popen([*worker, stream, str(point), hops, *share], stdout=subprocess.PIPE)
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


def measure(
    nodes: int, sync: str, hops: str, transfers: int, shares: list[int], point_s: float
) -> dict:
    with tempfile.TemporaryDirectory(prefix="natsbank-floor-") as tmp:
        sync_interval = None if sync == "default" else sync
        with LocalCluster(Path(tmp), nodes, sync_interval=sync_interval) as cluster:
            url = cluster.url
            pids = [node.pid for node in cluster.nodes]
            asyncio.run(_create_streams(url, STREAMS, nodes))
            warmup = min(WARMUP_TRANSFERS, transfers)
            _point(url, pids, hops, 0, warmup, 0)  # the streams' first blocks, connections
            peak = _point(url, pids, hops, 1, transfers, 0)
            curve = []
            for point, share in enumerate(shares, start=2):
                rate = peak["completed_per_s"] * share / 100
                n = max(200, int(rate * point_s))
                curve.append({"share_of_peak": share, **_point(url, pids, hops, point, n, rate)})
    setup = {"nodes": nodes, "replicas": nodes, "sync_interval": sync, "hops": hops}
    return {**setup, "peak": peak, "curve": curve}


def _transfers(text: str) -> int:
    if not text.isdigit() or int(text) < len(STREAMS):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 2")
    return int(text)


def _shares(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= 100 for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of percents from 1 to 100")
    return [int(p) for p in parts]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= POINT_SECONDS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration in (0, 3600] seconds")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3, choices=(1, 3))
    parser.add_argument("--sync", default="always", choices=("always", "default"))
    parser.add_argument("--hops", default="memory", choices=HOP_MODES, help="how steps travel")
    parser.add_argument("--transfers", type=_transfers, default=20000, help="at once: the peak")
    parser.add_argument("--shares", type=_shares, default="10,25,50,75", help="% of the peak")
    parser.add_argument("--point-seconds", type=_seconds, default=10.0)
    args = parser.parse_args()
    result = measure(
        args.nodes, args.sync, args.hops, args.transfers, args.shares, args.point_seconds
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
