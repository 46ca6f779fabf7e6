"""Sampling a soak while its load runs: at the end of every window, read what the ledger gained
(ACKs and final records, `benchmark/measure.py`'s scan), close the window, and look at memory,
the live ledger and the archive."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client

from benchmark.measure import LedgerScan
from benchmark.soak_figures import archive_bytes, live_ledger, memory
from benchmark.soak_series import Sample
from benchmark.soak_windows import SoakWindows
from eventsource.adapters.cluster import ClusterInfo


class WindowScan(LedgerScan):
    """The ledger scan, feeding windows instead of keeping every transfer."""

    def __init__(self, partitions: int, windows: SoakWindows) -> None:
        super().__init__(partitions)
        self.windows = windows

    def _ack(self, key: tuple[str, str], ts: int) -> None:
        self.windows.acked(key, ts)

    def _final(self, key: tuple[str, str], ts: int, outcome: str, cause: str | None) -> None:
        self.windows.final(key, ts)


@dataclass
class Watched:
    """What the sampler looks at; `services` may change (a restart replaces a process)."""

    nc: Client
    cluster: ClusterInfo
    services: list[subprocess.Popen]
    archiver: subprocess.Popen | None


async def sample_soak(
    watched: Watched,
    scan: WindowScan,
    *,
    duration_s: float,
    drain_s: float,
    load_done: Callable[[], bool],
    report: Callable[[Sample], None] = lambda sample: None,
) -> list[Sample]:
    """One sample per window until the soak's end, then on while the load finishes and what is
    in flight drains, for at most `drain_s` more."""
    windows = scan.windows
    samples: list[Sample] = []
    archive = 0
    for index in itertools.count():
        await asyncio.sleep(max(0.0, (windows.end_ns(index) - time.time_ns()) / 1e9))
        await scan.advance(watched.nc)
        figures = windows.close(index)
        used = memory(watched.cluster, watched.services, watched.archiver)
        subjects, messages = await live_ledger(watched.cluster)
        with contextlib.suppress(Exception):  # no answer in an election: the last size stands
            archive = await archive_bytes(watched.nc)
        t_s = round((index + 1) * windows.every_s, 3)
        sample = Sample(
            t_s=t_s,
            acked_per_s=figures.acked_per_s,
            completed_per_s=figures.completed_per_s,
            p50_ms=figures.p50_ms,
            p99_ms=figures.p99_ms,
            server_rss_mb=used.servers_mb,
            service_rss_mb=used.services_mb,
            archiver_rss_mb=used.archiver_mb,
            live_subjects=subjects,
            live_messages=messages,
            archive_bytes=archive,
            in_flight=len(windows.pending),
        )
        samples.append(sample)
        report(sample)
        overdue = t_s >= duration_s + drain_s
        if t_s >= duration_s and (overdue or (load_done() and not windows.pending)):
            return samples
    raise AssertionError("unreachable")
