"""What the servers hold and pass during a benchmark point: the ledger's footprint, their
message traffic (the work's, the bench's own reads, idle), and the commands that started them."""

from __future__ import annotations

import asyncio
import shlex

from benchmark.faults import server_traffic, traffic_between
from benchmark.options import LedgerFootprint
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect, stream_state
from eventsource.core.shared.layout import SHARED_STREAM
from eventsource.core.subjects import ledger_stream
from eventsource.settings import Store


def work_and_reads(before: dict, quiet: dict | None, after: dict) -> dict:
    """The servers' traffic of the work (until the inboxes were quiet: submissions, the
    services, replication, the quiescence polls), and apart from it, as `bench_reads`, the
    bench's own reading of the ledger after it (the completion scan and the audit)."""
    if quiet is None:  # never quiet (settle timed out): everything counts as the work's
        return {**traffic_between(before, after), "bench_reads": None}
    return {**traffic_between(before, quiet), "bench_reads": traffic_between(quiet, after)}


async def idle_traffic(cluster: ClusterInfo, seconds: float = 2.0) -> float:
    """Messages/s through the servers with the services up and no work: heartbeats, RAFT,
    idle fetches. It runs all along, so short runs carry more of it per transfer."""
    before = server_traffic(cluster)
    await asyncio.sleep(seconds)
    traffic = traffic_between(before, server_traffic(cluster))
    return round((traffic["in_msgs"] + traffic["out_msgs"]) / seconds, 1)


async def ledger_footprint(url: str, store: Store, partitions: int) -> LedgerFootprint:
    """Messages and bytes stored in the ledger streams, or the shared store's stream."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        streams = (
            [SHARED_STREAM]
            if store is Store.SHARED
            else [ledger_stream(k) for k in range(partitions)]
        )
        infos = [await js.stream_info(stream) for stream in streams]
        states = [await stream_state(nc, stream) for stream in streams]
        version = nc.connected_server_version
        return LedgerFootprint(
            replicas=infos[0].config.num_replicas or 1,
            messages=sum(i.state.messages for i in infos),
            bytes=sum(i.state.bytes for i in infos),
            subjects=sum(state.get("num_subjects", 0) for state in states),
            server_version=f"{version.major}.{version.minor}.{version.patch}",
        )
    finally:
        await nc.close()


def cluster_commands(cluster: ClusterInfo) -> list[str]:
    binary = str(nats_binary.find_nats_server())
    return [shlex.join([binary, "-c", node.config_path]) for node in cluster.nodes]
