"""A bank's service connects to the node that leads its home partition (adapters/leader_node.py),
so that each message of its atomic batches goes straight to the stream leader instead of over a
route: checked on the servers' own list of connections."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats

from benchmark.scenario import bootstrap, start_services, stop_services
from benchmark.workload import standard_banks
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.retry import is_transient
from eventsource.adapters.topology import Topology
from eventsource.core.subjects import ledger_stream
from tests.integration.replicas import stream_leader

SERVICE = "natsbank"  # the name a service's connection carries
WAIT_S = 60.0


def services_per_node(cluster: ClusterInfo) -> dict[str, int] | None:
    """Open connections named like a service's, per node (/connz); None while a node does not
    answer in time (a loaded machine): asked again."""
    found = {}
    for node in cluster.nodes:
        status, body = nats_binary.http_get(f"{node.monitor_url}/connz")
        if status != 200:
            return None
        connections = json.loads(body).get("connections") or []
        found[node.name] = sum(1 for c in connections if c.get("name") == SERVICE)
    return found


async def waits_for_messages(nc: nats.NATS, durable: str) -> bool:
    """Whether the service pulls on its inbox consumer; False while the consumer's group is
    without a leader (asked again)."""
    try:
        info = await nc.jetstream().consumer_info(ledger_stream(0), durable)
    except Exception as error:
        if not is_transient(error):
            raise
        return False
    return info.num_waiting > 0


async def test_a_service_connects_to_its_partition_leader_even_when_not_configured(
    nats3: ClusterInfo, tmp_path: Path
) -> None:
    banks = standard_banks(2, 2)
    await bootstrap(nats3.url, banks, topology=Topology(replicas=3))
    nc = await connect(nats3.url, name="test-watch")
    try:
        leader = await stream_leader(nc, ledger_stream(0))
        # Only the other two nodes are configured: the leader's is known from the cluster.
        others = ",".join(n.url for n in nats3.nodes if n.name != leader)
        procs = start_services(others, [banks[0].participant], 1, tmp_path / "logs")
        try:
            deadline = time.monotonic() + WAIT_S
            while True:  # serving once its inbox consumer waits for messages
                serving = await waits_for_messages(nc, f"submit_{banks[0].participant}_0")
                placed = services_per_node(nats3)
                # The leader the service looked for: it may have moved before the service came.
                leader = await stream_leader(nc, ledger_stream(0))
                # Only the service's connection: the one that looked for the leader is closed.
                alone = {node.name: int(node.name == leader) for node in nats3.nodes}
                if serving and placed == alone:
                    break
                assert time.monotonic() < deadline, f"not alone on {leader} in time: {placed}"
                assert all(p.poll() is None for p in procs), "the service stopped"
                await asyncio.sleep(0.2)
        finally:
            stop_services(procs)
    finally:
        await nc.close()
