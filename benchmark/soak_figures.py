"""What a soak samples besides the ledger's events: memory of each process (/proc), the live
ledger's subjects and messages (the servers' /jsz), and the archive's size."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from benchmark.faults import rss_mb
from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo, load_cluster
from eventsource.core.subjects import LEDGER_BUCKET_PREFIX

LEDGER_STREAM_PREFIX = f"KV_{LEDGER_BUCKET_PREFIX}"
# The archiver's NATS Object Store bucket `ledger_archive` is the stream OBJ_ledger_archive.
ARCHIVE_STREAM = "OBJ_ledger_archive"
JSZ_TIMEOUT_S = 5.0  # one node's /jsz?streams=true


@dataclass(frozen=True)
class Memory:
    servers_mb: dict[str, float]  # per node
    services_mb: float
    archiver_mb: float


def memory(
    cluster: ClusterInfo, services: list[subprocess.Popen], archiver: subprocess.Popen | None
) -> Memory:
    live = load_cluster(Path(cluster.state_dir)) or cluster  # a restarted node has a new pid
    alive = [p for p in services if p.poll() is None]
    return Memory(
        servers_mb={node.name: round(rss_mb(node.pid), 1) for node in live.nodes},
        services_mb=round(sum(rss_mb(p.pid) for p in alive), 1),
        archiver_mb=round(rss_mb(archiver.pid), 1) if archiver and archiver.poll() is None else 0.0,
    )


def live_figures(reports: dict[str, dict]) -> tuple[int, int]:
    """(subjects, messages) summed over the ledger streams, from each node's /jsz: per stream,
    the figures of the node that leads it; while none does (an election), the largest."""
    seen: dict[str, list[tuple[bool, int, int]]] = {}
    for node, jsz in reports.items():
        for account in jsz.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                name = str(detail.get("name", ""))
                if not name.startswith(LEDGER_STREAM_PREFIX):
                    continue
                state = detail.get("state") or {}
                leads = (detail.get("cluster") or {}).get("leader") == node
                figures = (int(state.get("num_subjects", 0)), int(state.get("messages", 0)))
                seen.setdefault(name, []).append((leads, *figures))
    subjects = messages = 0
    for reports_of_stream in seen.values():
        led = [r for r in reports_of_stream if r[0]]
        _, count, stored = led[0] if led else max(reports_of_stream, key=lambda r: r[1:])
        subjects += count
        messages += stored
    return subjects, messages


async def live_ledger(cluster: ClusterInfo) -> tuple[int, int]:
    live = load_cluster(Path(cluster.state_dir)) or cluster
    reports = {}
    for node in live.nodes:
        url = f"{node.monitor_url}/jsz?streams=true"
        status, body = await asyncio.to_thread(nats_binary.http_get, url, JSZ_TIMEOUT_S)
        if status == 200:
            reports[node.name] = json.loads(body)
    return live_figures(reports)


@dataclass
class Watched:
    """What a soak looks at; `services` may change (a restart replaces a process)."""

    nc: Client
    cluster: ClusterInfo
    services: list[subprocess.Popen]
    archiver: subprocess.Popen | None


@dataclass(frozen=True)
class Gauges:
    """What a soak sees at one moment, besides the transfers."""

    memory: Memory
    live_subjects: int
    live_messages: int
    archive_bytes: int


async def look(watched: Watched, archive_before: int) -> Gauges:
    """Memory, the live ledger and the archive now; the archive's last size while its stream
    does not answer (an election)."""
    used = memory(watched.cluster, watched.services, watched.archiver)
    subjects, messages = await live_ledger(watched.cluster)
    archive = archive_before
    with contextlib.suppress(Exception):
        archive = await archive_bytes(watched.nc)
    return Gauges(used, subjects, messages, archive)


async def archive_bytes(nc: Client) -> int:
    """The archive's stored bytes; 0 while the archiver has not created it."""
    try:
        info = await nc.jetstream().stream_info(ARCHIVE_STREAM)
    except NotFoundError:
        return 0
    return info.state.bytes
