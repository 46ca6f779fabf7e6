"""`natsbank bench --soak DURATION --rate R`: a steady rate for a long time on one cluster,
sampled every few seconds, to see whether the live state, memory and latency stay flat.

One cluster, the bench's services, and with a finite `--horizon` one archiver process; before
and after the load, the restart of a service instance and of a node and the audit are timed
(benchmark/soak_restarts.py). With a finite horizon, "before" is timed once a first load has
filled the horizon (and drained): on an empty ledger everything is quick, and the question is
whether history beyond the horizon costs anything. The empty ledger's times are reported too.
The load runs in a process of its own (benchmark/soak_load.py); the bench's process samples
(benchmark/soak_sampler.py).
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from nats.aio.client import Client

from benchmark.archiver import archiver_for, fill_seconds, history_for
from benchmark.bench import check_options, machine, sigterm_as_interrupt
from benchmark.options import GENEROUS_FUNDING, BenchOptions, Hooks, Point
from benchmark.point import serve_args
from benchmark.projection import ProjectorChoice
from benchmark.scenario import bootstrap, default_banks, run_sync, start_layout, stop_services
from benchmark.servers import cluster_commands
from benchmark.soak_figures import Watched
from benchmark.soak_load import LoadPlan, LoadProcess, LoadTotals
from benchmark.soak_restarts import time_restarts
from benchmark.soak_result import FillFigures, SoakMeasured, Timings, soak_report
from benchmark.soak_sampler import WindowScan, sample_soak
from benchmark.soak_series import Sample
from benchmark.soak_windows import SoakWindows
from benchmark.workload import Bank
from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.topology import HistoryConfig, Topology, quick_redelivery, seconds
from eventsource.core.errors import ConfigError
from eventsource.core.limits import ARCHIVE_PACE_SHARE
from eventsource.settings import Store

DEFAULT_HORIZON = "2m"
DEFAULT_SAMPLE_EVERY = "5s"
DRAIN_S_DEFAULT = 300.0  # after the load, how long what is in flight may take to end
# Between the restarts timed before the load and the load: their after-effects (pulls lost with
# the node, consumers changing leader) are not the load's. Dev runs without it had a first
# window with a p99 of 4-5 s at 1000 transfers/s.
QUIET_BEFORE_LOAD_S = 10.0
NO_PROJECTOR = ProjectorChoice.NONE
READ_AGAIN_S = 0.5  # between reads of the ledger while a load's last transfers end


@dataclass(frozen=True, kw_only=True)
class SoakOptions:
    duration: str  # e.g. 30m, 90s
    rate: float | None
    horizon: str = DEFAULT_HORIZON  # or "forever": no archiver
    sample_every: str = DEFAULT_SAMPLE_EVERY
    bench: BenchOptions = field(default_factory=BenchOptions)

    @property
    def duration_s(self) -> float:
        return seconds(self.duration)

    @property
    def sample_every_s(self) -> float:
        return seconds(self.sample_every)


def check_soak(options: SoakOptions) -> None:
    """Refuse a soak that cannot run before anything starts."""
    bench = options.bench
    check_options(bench)
    for flag, text in (("--soak", options.duration), ("--sample-every", options.sample_every)):
        try:
            if seconds(text) <= 0:
                raise ValueError(f"{flag} must be above 0")
        except ValueError as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    if options.sample_every_s > options.duration_s:
        raise ConfigError("--sample-every must not be longer than --soak")
    if options.rate is None:
        raise ConfigError("--soak needs --rate (transfers/s): a soak offers a steady rate")
    others = bench.scales or bench.process_faults.active or bench.projector is not NO_PROJECTOR
    if bench.stores != (Store.INDEPENDENT,) or others:
        raise ConfigError(
            "--soak runs the independent store only, without --scale, --projector or process faults"
        )
    history_for(options.horizon)


def soak_topology(options: SoakOptions) -> Topology:
    bench = options.bench
    base = quick_redelivery(bench.resend_after, replicas=bench.nodes)
    return msgspec.structs.replace(base, history=history_for(options.horizon))


def run_soak(options: SoakOptions, workdir: Path, hooks: Hooks | None = None) -> dict:
    """The whole soak as a stable dict; `workdir` holds the servers' data and the logs."""
    hooks = hooks or Hooks()
    check_soak(options)
    bench, topology = options.bench, soak_topology(options)
    point = Point(Store.INDEPENDENT, bench.modes[0], 0.0)
    banks = default_banks(bench.participants, bench.accounts)
    logs = workdir / "logs"
    with (
        sigterm_as_interrupt(),
        LocalCluster(
            workdir / "nats", nodes=bench.nodes, sync_interval=bench.sync_interval, remove_data=True
        ) as cluster,
    ):
        hooks.phase(f"soak: {bench.nodes} node(s), horizon {options.horizon}, provisioning")
        partitions = run_sync(
            bootstrap(cluster.url, banks, funding=GENEROUS_FUNDING, topology=topology)
        )
        archiver = None  # first: without the command, nothing else starts
        if topology.history.horizon != "forever":
            archiver = archiver_for(cluster.url, topology, workdir, logs)
        args = tuple(serve_args(bench, point, workdir / "stats"))
        (workdir / "stats").mkdir(parents=True, exist_ok=True)
        procs: list[subprocess.Popen] = []
        try:
            procs = start_layout(
                cluster.url, [b.participant for b in banks], bench.processes, bench.instances,
                logs, serve_args=args,
            )  # fmt: skip
            commands = _commands(cluster, procs, archiver)
            run = SoakRun(cluster, procs, archiver, partitions, banks, logs, topology.history)
            measured = run_sync(_measure(options, run, hooks))
        finally:
            stop_services([*procs, *([archiver] if archiver else [])])
    return soak_report(_settings(options, topology, point), measured, commands)


async def _load_and_sample(
    options: SoakOptions,
    run: SoakRun,
    watched: Watched,
    scan: WindowScan,
    length: tuple[float, int],
    hooks: Hooks,
) -> tuple[list[Sample], LoadTotals]:
    """The steady load for `length` = (seconds, seed), sampled into `scan.windows`, until what
    it sent drained (or the drain's bound passed)."""
    bench, (seconds_, seed) = options.bench, length
    rate = options.rate or 0.0  # check_soak refuses a soak without one
    plan = LoadPlan(run.cluster.url, run.banks, rate, seconds_, seed, bench.reject_share)
    load = LoadProcess(plan)
    load.start()
    try:
        await load.started()
        samples = await sample_soak(
            watched, scan,
            duration_s=seconds_,
            drain_s=bench.settle_timeout or DRAIN_S_DEFAULT,
            load_done=lambda: load.done,
            report=lambda s: hooks.phase(_progress_line(s)),
        )  # fmt: skip
        return samples, await load.finished()
    finally:
        load.stop()


async def _read_to_the_end(scan: WindowScan, nc: Client, bound_s: float) -> None:
    """Read the ledger once more after a load ended (the sampler may have stopped reading just
    before its last ACK) and until none of its transfers is in flight, so that the next windows
    count none of them."""
    deadline = time.monotonic() + bound_s
    await scan.advance(nc)
    while scan.windows.pending and time.monotonic() < deadline:
        await asyncio.sleep(READ_AGAIN_S)
        await scan.advance(nc)


@dataclass(frozen=True)
class SoakRun:
    """What a soak's measurement runs against: started before it, stopped after it."""

    cluster: ClusterInfo
    procs: list[subprocess.Popen]  # the services; a timed restart replaces one in place
    archiver: subprocess.Popen | None
    partitions: int
    banks: list[Bank]
    logs: Path
    history: HistoryConfig


async def _measure(options: SoakOptions, run: SoakRun, hooks: Hooks) -> SoakMeasured:
    """The restarts on the empty ledger, the horizon filled, the restarts before, the load with
    its samples and its drain, the restarts after."""
    bench, cluster, procs, logs = options.bench, run.cluster, run.procs, run.logs
    url = cluster.url
    nc = await connect(url, name="natsbank-soak-sampler", error_cb=_expected_while_restarting)
    watched = Watched(nc, cluster, procs, run.archiver)
    fill_s = fill_seconds(run.history)
    try:
        hooks.phase("on the empty ledger: restart of a service instance, of a node; the audit")
        empty = await time_restarts(nc, cluster, procs, url, logs / "empty")
        scan = WindowScan(run.partitions, SoakWindows(time.time_ns(), options.sample_every_s))
        fill = None
        if fill_s:
            await asyncio.sleep(QUIET_BEFORE_LOAD_S)
            hooks.phase(f"filling the horizon: {options.rate:g} transfers/s for {fill_s:g} s")
            fill = await _load_and_sample(
                options, run, watched, scan, (fill_s, bench.seed + 1), hooks
            )
            await _read_to_the_end(scan, nc, bench.settle_timeout or DRAIN_S_DEFAULT)
            hooks.phase("before the soak: restart of a service instance, of a node; the audit")
            before = await time_restarts(nc, cluster, procs, url, logs / "before")
        else:
            before = empty
        await asyncio.sleep(QUIET_BEFORE_LOAD_S)
        hooks.phase(f"soak: {options.rate:g} transfers/s for {options.duration}")
        scan.windows = windows = SoakWindows(time.time_ns(), options.sample_every_s)
        samples, totals = await _load_and_sample(
            options, run, watched, scan, (options.duration_s, bench.seed), hooks
        )
        hooks.phase("after the soak: restart of a service instance, of a node; the audit")
        after = await time_restarts(nc, cluster, procs, url, logs / "after")
        version = nc.connected_server_version
    finally:
        await nc.close()
    server = f"{version.major}.{version.minor}.{version.patch}"
    timings = Timings(empty=empty if fill else None, before=before, after=after)
    filled = FillFigures.of(fill, fill_s)
    return SoakMeasured(samples, windows, totals, timings, filled, machine(None, server))


async def _expected_while_restarting(exc: Exception) -> None:
    """The node restarts drop the sampler's connection; it reconnects by itself."""


def _settings(options: SoakOptions, topology: Topology, point: Point) -> dict:
    bench, history = options.bench, topology.history
    bounded = history.horizon != "forever"
    return {
        "duration_s": options.duration_s,
        "rate": options.rate,
        "sample_every_s": options.sample_every_s,
        "horizon": history.horizon,
        "period_s": seconds(history.period) if bounded else None,
        "max_clock_skew_s": seconds(history.max_clock_skew) if bounded else None,
        "archiver": bounded,
        "archiver_pace": ARCHIVE_PACE_SHARE if bounded else None,
        "mode": str(point.transport),
        "nodes": bench.nodes,
        "processes": bench.processes,
        "instances": bench.instances,
        "participants": bench.participants,
        "sync_interval": bench.sync_interval or "default (2m)",
        "seed": bench.seed,
        "live_figures_from": "each ledger stream's leader (/jsz; the largest during an election)",
    }


def _progress_line(sample: Sample) -> str:
    p99 = f"{sample.p99_ms:,.0f} ms" if sample.p99_ms is not None else "-"
    return (
        f"  {sample.t_s:7.0f} s: {sample.completed_per_s:8,.1f}/s final, p99 {p99}, "
        f"live {sample.live_subjects:,} subjects, servers "
        f"{sum(sample.server_rss_mb.values()):,.0f} MB, services {sample.service_rss_mb:,.0f} MB"
    )


def _commands(
    cluster: ClusterInfo, procs: list[subprocess.Popen], archiver: subprocess.Popen | None
) -> list[str]:
    env = f"NATS_URL={shlex.quote(cluster.url)}"
    started = [*procs, *([archiver] if archiver else [])]
    return [*cluster_commands(cluster), *(f"{env} {shlex.join(map(str, p.args))}" for p in started)]
