"""A bank's service connects to the node that leads its home partition (adapters/leader_node.py),
so that each message of its atomic batches goes straight to the stream leader instead of over a
route: checked on the servers' own list of connections."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from benchmark.scenario import bootstrap, start_services, stop_services
from benchmark.workload import standard_banks
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.topology import Topology
from eventsource.core.subjects import ledger_stream

SERVICE = "natsbank"  # the name a service's connection carries
WAIT_S = 60.0


def services_per_node(cluster: ClusterInfo) -> dict[str, int]:
    """Open connections named like a service's, per node (/connz)."""
    found = {}
    for node in cluster.nodes:
        status, body = nats_binary.http_get(f"{node.monitor_url}/connz")
        assert status == 200, body
        connections = json.loads(body).get("connections") or []
        found[node.name] = sum(1 for c in connections if c.get("name") == SERVICE)
    return found


async def test_a_service_connects_to_its_partition_leader_even_when_not_configured(
    nats3: ClusterInfo, tmp_path: Path
) -> None:
    banks = standard_banks(2, 2)
    await bootstrap(nats3.url, banks, topology=Topology(replicas=3))
    nc = await connect(nats3.url, name="test-watch")
    try:
        leader = (await nc.jetstream().stream_info(ledger_stream(0))).cluster.leader
        # Only the other two nodes are configured: the leader's is known from the cluster.
        others = ",".join(n.url for n in nats3.nodes if n.name != leader)
        procs = start_services(others, [banks[0].participant], 1, tmp_path / "logs")
        try:
            deadline = time.monotonic() + WAIT_S
            while True:  # serving once its inbox consumers wait for messages
                infos = [
                    await nc.jetstream().consumer_info(ledger_stream(0), durable)
                    for durable in (f"submit_{banks[0].participant}_0",)
                ]
                placed = services_per_node(nats3)
                # Only the service's connection: the one that looked for the leader is closed.
                alone = {name: int(name == leader) for name in placed}
                if all(i.num_waiting > 0 for i in infos) and placed == alone:
                    break
                assert time.monotonic() < deadline, f"not alone on {leader} in time: {placed}"
                assert all(p.poll() is None for p in procs), "the service stopped"
                await asyncio.sleep(0.2)
        finally:
            stop_services(procs)
    finally:
        await nc.close()
