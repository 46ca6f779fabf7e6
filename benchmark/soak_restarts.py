"""What a soak times before and after its load: the restart of a service instance and of a
nats-server node, and `natsbank audit`; with a bounded live ledger they should not grow.

- A service instance: `kill -9`, started again with `--http-port`, until its /readyz answers 200
  (connected, every inbox consumer bound: what `natsbank serve` calls ready).
- A node: `kill -9` of a follower of the first ledger stream (the only node on a 1-node
  cluster), started again on its store, until every stream reports it current (its leader, or
  a replica marked current and not offline).
- The audit: `natsbank audit --expect-final` in a process of its own, wall time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import ClusterInfo as StreamCluster

from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo, kill_node, load_cluster, restart_node
from eventsource.core.errors import InfrastructureError
from eventsource.core.subjects import ledger_stream

SERVICE_READY_TIMEOUT_S = 120.0
NODE_CURRENT_TIMEOUT_S = 600.0
AUDIT_TIMEOUT_S = 7200.0  # millions of transfers take tens of minutes (README)
POLL_S = 0.1


@dataclass(frozen=True)
class RestartTimes:
    service_s: float
    node: str
    node_s: float
    audit_s: float
    audit_ok: bool


def lagging_streams(node: str, clusters: dict[str, StreamCluster | None]) -> list[str]:
    """The streams that do not report `node` current: without a leader, or with `node` as a
    replica that is not current or offline. A stream placed on other nodes only (an R1 stream)
    does not wait for it; one without cluster information is a single server's."""
    lagging = []
    for stream, cluster in clusters.items():
        if cluster is None or cluster.leader == node:
            continue
        peer = next((p for p in cluster.replicas or [] if p.name == node), None)
        if cluster.leader is None or (peer is not None and (not peer.current or peer.offline)):
            lagging.append(stream)
    return sorted(lagging)


def restart_service(procs: list[subprocess.Popen], index: int, url: str, log: Path) -> float:
    """Seconds from the kill of `procs[index]` until its replacement is ready; the replacement
    takes its place in `procs`."""
    victim = procs[index]
    args = list(victim.args)
    if "--http-port" in args:  # restarted before: drop its port, take a new one
        at = args.index("--http-port")
        del args[at : at + 2]
    port = nats_binary.free_ports(1)[0]
    began = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        procs[index] = subprocess.Popen(
            [*args, "--http-port", str(port)],
            env={**os.environ, "NATS_URL": url},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = began + SERVICE_READY_TIMEOUT_S
    while nats_binary.http_get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
        if procs[index].poll() is not None or time.monotonic() > deadline:
            raise InfrastructureError(f"the restarted service never became ready (see {log})")
        time.sleep(POLL_S)
    return time.monotonic() - began


async def restart_a_node(nc: Client, cluster: ClusterInfo) -> tuple[str, float]:
    """(node, seconds from its kill until every stream reports it current)."""
    live = load_cluster(Path(cluster.state_dir)) or cluster
    names = [node.name for node in live.nodes]
    leader = (await nc.jetstream().stream_info(ledger_stream(0))).cluster
    led = leader.leader if leader else None
    index = next((i for i, name in enumerate(names) if name != led), 0)
    began = time.monotonic()
    kill_node(live, index)
    await asyncio.to_thread(restart_node, live, index)
    deadline = began + NODE_CURRENT_TIMEOUT_S
    while lagging := await _lagging(nc, names[index]):
        if time.monotonic() > deadline:
            raise InfrastructureError(f"node {names[index]} not current on {lagging}")
        await asyncio.sleep(POLL_S)
    return names[index], time.monotonic() - began


async def _lagging(nc: Client, node: str) -> list[str]:
    try:
        infos = await nc.jetstream().streams_info()
    except Exception as exc:  # reconnecting, or no meta leader yet: not current yet
        return [f"stream list: {type(exc).__name__}"]
    return lagging_streams(node, {info.config.name: info.cluster for info in infos})


def time_audit(url: str) -> tuple[float, bool]:
    """(seconds, clean) of `natsbank audit --expect-final`, as a user runs it."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "eventsource.cli", "audit", "--expect-final", "--json"],
        env={**os.environ, "NATS_URL": url},
        capture_output=True,
        timeout=AUDIT_TIMEOUT_S,
        check=False,
    )
    return time.monotonic() - began, done.returncode == 0


async def time_restarts(
    nc: Client, cluster: ClusterInfo, procs: list[subprocess.Popen], url: str, log_dir: Path
) -> RestartTimes:
    service_s = await asyncio.to_thread(restart_service, procs, 0, url, log_dir / "restart.log")
    node, node_s = await restart_a_node(nc, cluster)
    audit_s, audit_ok = await asyncio.to_thread(time_audit, url)
    return RestartTimes(
        service_s=round(service_s, 3),
        node=node,
        node_s=round(node_s, 3),
        audit_s=round(audit_s, 3),
        audit_ok=audit_ok,
    )
