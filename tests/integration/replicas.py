"""Looking at one replica of a stream from outside: which node leads it, how far a node's own
copy goes (its monitoring endpoint, not a read that any replica may answer), and clients that
talk to a given node first."""

from __future__ import annotations

import asyncio

import msgspec
import nats

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.cluster_info import NodeInfo
from eventsource.adapters.nats_binary import http_get


async def leader_index(nc: nats.NATS, cluster: ClusterInfo, stream: str) -> int:
    info = await nc.jetstream().stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader"
    return [node.name for node in cluster.nodes].index(info.cluster.leader)


def replica_last_seq(node: NodeInfo, stream: str) -> int | None:
    """The last sequence in `node`'s own copy of `stream`; None while it has none to show."""
    status, body = http_get(f"{node.monitor_url}/jsz?streams=true", timeout=1.0)
    if status != 200:
        return None
    for account in msgspec.json.decode(body).get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                return int(detail["state"]["last_seq"])
    return None


async def accepts_clients(node: NodeInfo, timeout: float = 30.0) -> None:
    """Return as soon as `node` takes client connections (it serves reads from then on)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", node.client_port)
            writer.close()
            return
        except OSError:
            assert asyncio.get_running_loop().time() < deadline, f"{node.name} never came up"
            await asyncio.sleep(0.01)


async def connect_first_to(node: NodeInfo, cluster: ClusterInfo) -> nats.NATS:
    """A client on `node`, so that direct gets are answered by it whenever it serves them."""
    others = [n.url for n in cluster.nodes if n.name != node.name]
    return await nats.connect(
        servers=[node.url, *others],
        dont_randomize=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )
