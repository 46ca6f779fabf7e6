"""Looking at one replica of a stream from outside: which node leads it, how far a node's own
copy goes (its monitoring endpoint, not a read that any replica may answer), and clients that
talk to a given node first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import nats
from nats.js.api import StreamConfig

from eventsource.adapters.cluster import ClusterInfo, load_cluster, restart_node
from eventsource.adapters.cluster_info import NodeInfo
from eventsource.adapters.nats_binary import http_get
from eventsource.adapters.retry import transient_retry
from eventsource.core.errors import TemporarilyUnavailable


async def stream_leader(nc: nats.NATS, stream: str) -> str:
    """The name of the node that leads `stream`. Under load a stream can be without a leader
    for a moment (an election): its info then fails or names none, and is asked again."""

    async def ask() -> str:
        info = await nc.jetstream().stream_info(stream)
        if info.cluster is None or not info.cluster.leader:
            raise TemporarilyUnavailable(f"stream {stream} has no leader yet")
        return info.cluster.leader

    return await transient_retry(ask, what=f"the leader of {stream}")


async def add_stream(nc: nats.NATS, config: StreamConfig) -> None:
    """Create `config`'s stream. On a cluster just started, or a loaded machine, the request
    can go unanswered while the meta group elects or applies: it is asked again (creating a
    stream with the same config again is a no-op)."""
    await transient_retry(
        lambda: nc.jetstream().add_stream(config), what=f"creating stream {config.name}"
    )


async def leader_index(nc: nats.NATS, cluster: ClusterInfo, stream: str) -> int:
    """The index in `cluster.nodes` of the node that leads `stream`."""
    return [node.name for node in cluster.nodes].index(await stream_leader(nc, stream))


# A node restarted while the others take load replays and catches up every raft group it holds
# before it reports healthy: on two shared cores that can take longer than a quiet start.
RESTART_UNDER_LOAD_S = 120.0


async def restart_under_load(cluster: ClusterInfo, index: int) -> ClusterInfo:
    """Start node `index` again (off the event loop, so the test's clients keep running) and wait
    until it has caught up."""
    current = load_cluster(Path(cluster.state_dir)) or cluster
    return await asyncio.to_thread(restart_node, current, index, timeout=RESTART_UNDER_LOAD_S)


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
