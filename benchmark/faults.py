"""What one benchmark point does to the system besides the workload, and what it counts.

Faults: the transport plan is handed to every `serve` process (`--faults`); process faults are
real: `kill -9` of a random service process at seeded random intervals (restarted at once, as a
supervisor would), `kill -9` of a nats-server node (restarted after a while), and a receiver
whose only process starts late. Counts: the services' own counters (`serve --stats-dir`) and
the servers' monitoring endpoint (`/varz`, which includes route and replication traffic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.scenario import ScenarioResult
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo, kill_node, load_cluster, restart_node


@dataclass(frozen=True, kw_only=True)
class ProcessFaults:
    kill_service_every: float | None = None  # mean seconds between kill -9 of a service process
    kill_node_at: float | None = None  # seconds into the push; the node is down `node_down` s
    node_down: float = 5.0
    receiver_down: float | None = None  # seconds the last participant's process starts late

    @property
    def active(self) -> bool:
        return bool(self.kill_service_every or self.kill_node_at or self.receiver_down)


NO_PROCESS_FAULTS = ProcessFaults()


@dataclass
class Disturbance:
    service_kills: int = 0
    node_kills: int = 0
    peak_server_rss_mb: float = 0.0  # summed over the nats-server nodes, sampled every 0.5 s
    peak_service_rss_mb: float = 0.0  # summed over the service processes


def rss_mb(pid: int) -> float:
    """Resident memory of a live process (Linux /proc), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def sample_memory(
    cluster: ClusterInfo, procs: list[subprocess.Popen], counts: Disturbance, done: asyncio.Event
) -> None:
    while not done.is_set():
        live = load_cluster(Path(cluster.state_dir)) or cluster  # a restarted node has a new pid
        servers = sum(rss_mb(node.pid) for node in live.nodes)
        services = sum(rss_mb(p.pid) for p in procs if p.poll() is None)
        counts.peak_server_rss_mb = max(counts.peak_server_rss_mb, round(servers, 1))
        counts.peak_service_rss_mb = max(counts.peak_service_rss_mb, round(services, 1))
        await _sleep_unless(done, 0.5)


async def disturb(
    faults: ProcessFaults,
    procs: list[subprocess.Popen],
    restart: Callable[[subprocess.Popen], subprocess.Popen],
    cluster: ClusterInfo,
    done: asyncio.Event,
    seed: int,
) -> Disturbance:
    """Run the process faults until `done`; `procs` is updated in place with restarts."""
    rng = random.Random(seed)
    counts = Disturbance()

    async def kill_services() -> None:
        while faults.kill_service_every and not done.is_set():
            await _sleep_unless(done, rng.expovariate(1 / faults.kill_service_every))
            if done.is_set():
                return
            index = rng.randrange(len(procs))
            victim = procs[index]
            if victim.poll() is None:
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                counts.service_kills += 1
            procs[index] = restart(victim)

    async def kill_a_node() -> None:
        if faults.kill_node_at is None or len(cluster.nodes) < 2:
            return
        await _sleep_unless(done, faults.kill_node_at)
        index = rng.randrange(len(cluster.nodes))
        live = load_cluster(Path(cluster.state_dir)) or cluster
        kill_node(live, index)
        counts.node_kills += 1
        await asyncio.sleep(faults.node_down)
        await asyncio.to_thread(restart_node, load_cluster(Path(cluster.state_dir)) or live, index)

    await asyncio.gather(kill_services(), kill_a_node())
    return counts


async def _sleep_unless(done: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), seconds)


def service_counters(stats_dir: Path) -> dict[str, float]:
    """The sum of every service process's counters (a killed process keeps its last file)."""
    total: dict[str, int] = {}
    for path in stats_dir.glob("*.json"):
        try:
            figures = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # caught mid-write: its `.tmp` twin is not read, so this is rare
        for service in figures:
            for key, value in service.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    total[key] = total.get(key, 0) + value
                elif key == "time_s":  # seconds per stage (services/stopwatch.py)
                    for stage, seconds in value.items():
                        total[f"time_s_{stage}"] = total.get(f"time_s_{stage}", 0) + seconds
                elif isinstance(value, dict):
                    for fate, count in value.items():
                        total[f"faults_{fate}"] = total.get(f"faults_{fate}", 0) + count
    return total


TRAFFIC = ("in_msgs", "out_msgs", "in_bytes", "out_bytes")


def server_traffic(cluster: ClusterInfo) -> dict[str, dict[str, int]]:
    """Per node: messages and bytes in and out (clients, routes and replication)."""
    found = {}
    for node in cluster.nodes:
        status, body = nats_binary.http_get(f"{node.monitor_url}/varz")
        if status == 200:
            varz = json.loads(body)
            found[node.name] = {key: int(varz.get(key, 0)) for key in TRAFFIC}
    return found


def traffic_between(before: dict, after: dict) -> dict[str, int]:
    """The traffic of the interval, summed over nodes. A node restarted meanwhile counts from
    its restart (its counters began again at 0), so a node kill makes this a lower bound."""
    total = dict.fromkeys(TRAFFIC, 0)
    for name, counters in after.items():
        start = before.get(name, dict.fromkeys(TRAFFIC, 0))
        restarted = counters["in_msgs"] < start["in_msgs"]
        for key in TRAFFIC:
            total[key] += counters[key] - (0 if restarted else start[key])
    return total


async def drive_disturbed(
    drive: Callable[[], Awaitable[ScenarioResult]],
    faults: ProcessFaults,
    cluster: ClusterInfo,
    procs: list[subprocess.Popen],
    start_late: Callable[[], list[subprocess.Popen]],
    seed: int,
) -> tuple[ScenarioResult, Disturbance]:
    """The workload, with the process faults running beside it until it has settled."""
    done = asyncio.Event()

    def restart(victim: subprocess.Popen) -> subprocess.Popen:
        return subprocess.Popen(
            victim.args,
            env={**os.environ, "NATS_URL": cluster.url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def receiver_returns() -> None:
        if faults.receiver_down:
            await asyncio.sleep(faults.receiver_down)
            procs.extend(start_late())

    disturbing = asyncio.create_task(disturb(faults, procs, restart, cluster, done, seed))
    late = asyncio.create_task(receiver_returns())
    memory = Disturbance()
    sampling = asyncio.create_task(sample_memory(cluster, procs, memory, done))
    try:
        result = await drive()
    finally:
        done.set()
        late.cancel()
        counts = await disturbing
        await sampling
    counts.peak_server_rss_mb = memory.peak_server_rss_mb
    counts.peak_service_rss_mb = memory.peak_service_rss_mb
    return result, counts


def transport_figures(
    mode: str, loss: float, completed: int, counters: dict, traffic: dict, disturbed: Disturbance
) -> dict:
    """Messages per completed transfer: what the endpoints sent, what was sent again, and what
    went through the servers. JetStream's resends are the server's redeliveries; core mode's
    are the endpoints' resends."""
    done = completed or 1
    sent = counters.get("outbox_messages" if mode == "jetstream" else "published", 0)
    again = counters.get("redelivered" if mode == "jetstream" else "resent_messages", 0)
    return {
        "loss": loss,
        "protocol_messages": sent,
        "protocol_messages_per_transfer": round(sent / done, 3),
        "redeliveries": again,
        "redeliveries_per_transfer": round(again / done, 3),
        "server_messages": traffic["in_msgs"] + traffic["out_msgs"],
        "server_messages_per_transfer": round((traffic["in_msgs"] + traffic["out_msgs"]) / done, 2),
        **bench_read_figures(traffic.get("bench_reads"), done),
        "server_bytes_per_transfer": round((traffic["in_bytes"] + traffic["out_bytes"]) / done),
        "faults_injected": {k[7:]: v for k, v in counters.items() if k.startswith("faults_")},
        "peak_server_rss_mb": disturbed.peak_server_rss_mb,
        "peak_service_rss_mb": disturbed.peak_service_rss_mb,
        "service_kills": disturbed.service_kills,
        "node_kills": disturbed.node_kills,
        "groups": counters.get("groups", 0),
        "conflicts": counters.get("conflicts", 0),
        "time_s": time_breakdown(counters),
        # A proxy to a remote bank (core/remote.py): the link's and the remote banks' counts.
        "remote": {k: v for k, v in counters.items() if k.startswith("remote_")} or None,
    }


def bench_read_figures(reads: dict | None, done: int) -> dict:
    """The servers' messages of the bench's own reading after the work (the completion scan,
    the audit), kept out of `server_messages`: a deployment does not read its whole ledger
    after every batch of transfers."""
    if reads is None:
        return {}
    messages = reads["in_msgs"] + reads["out_msgs"]
    return {
        "bench_read_messages": messages,
        "bench_read_messages_per_transfer": round(messages / done, 2),
    }


def time_breakdown(counters: dict) -> dict:
    """Seconds per stage summed over every service instance (services/stopwatch.py), and each
    deciding stage's share of their sum (`fetch` overlaps them: it is not in the sum)."""
    seconds = {k[len("time_s_") :]: v for k, v in counters.items() if k.startswith("time_s_")}
    busy = sum(v for stage, v in seconds.items() if stage != "fetch")
    return {
        "seconds": {stage: round(v, 3) for stage, v in seconds.items()},
        "busy_s": round(busy, 3),
        "share": {
            stage: round(v / busy, 3) for stage, v in seconds.items() if stage != "fetch" and busy
        },
    }
