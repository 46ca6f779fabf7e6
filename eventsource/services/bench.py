"""`natsbank bench`: natsbank against PostgreSQL's own TPC-B on the same machine.

The two run one after the other, each alone on the cores: PostgreSQL is stopped before the
nats-server cluster starts. Every figure comes from the run itself (pgbench's report, the
ledger's server timestamps and stream state, the audit); nothing is assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import os
import platform
import shlex
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.pgbench import TpcbResult, run_tpcb
from eventsource.adapters.postgres import EmbeddedPostgres
from eventsource.adapters.topology import quick_redelivery
from eventsource.core.errors import ConfigError
from eventsource.core.faults import FaultPlan
from eventsource.core.subjects import ledger_stream
from eventsource.services.bench_faults import (
    NO_PROCESS_FAULTS,
    ProcessFaults,
    drive_disturbed,
    server_traffic,
    service_counters,
    traffic_between,
    transport_figures,
)
from eventsource.services.bench_projection import ProjectorChoice, measure_projectors
from eventsource.services.scenario import (
    ScenarioResult,
    bootstrap,
    default_banks,
    drive,
    run_sync,
    start_layout,
    start_services,
    stop_services,
)

# Far above what a few hundred thousand transfers of at most 100.99 can move out of an account,
# yet below the 999,999,999.00 that the workload asks for when it wants INSUFFICIENT_FUNDS.
GENEROUS_FUNDING = "10000000.00"


class Mode(enum.StrEnum):
    JETSTREAM = "jetstream"
    CORE = "core"


DEFAULT_LOSSES = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    modes: tuple[Mode, ...] = (Mode.JETSTREAM, Mode.CORE)
    losses: tuple[float, ...] = DEFAULT_LOSSES  # share of protocol messages dropped, per point
    duplicate: float = 0.0  # and duplicated / delayed, at every point
    delay: float = 0.0
    max_delay: float = 0.5
    replay_after: float = 2.0  # core resend clock = JetStream ack wait, doubling to 30 s
    scales: tuple[int, ...] = ()  # then each mode at 0% loss with transfers x factor
    settle_timeout: float = 900.0  # a transfer not final by then counts as lost
    process_faults: ProcessFaults = NO_PROCESS_FAULTS
    transfers: int = 20000
    participants: int = 4
    accounts: int = 5
    processes: int = 2
    instances: int = 1  # instances per participant, spread over the processes
    nodes: int = 3
    rate: float | None = None
    sync_interval: str | None = None  # None: nats-server's default (2 min)
    reject_share: float = 0.02
    seed: int = 1
    pg_seconds: int = 15
    pg_scale: int = 10
    pg_clients: int = 8
    pg_threads: int = 2
    skip_postgres: bool = False
    projector: ProjectorChoice = ProjectorChoice.NONE  # measured after the headline run


@dataclass
class Hooks:
    """How the run reports while it goes: a phase line, and transfers ACKed so far."""

    phase: Callable[[str], None] = lambda text: None
    acked: Callable[[int], None] | None = None


@dataclass(frozen=True)
class LedgerState:
    replicas: int
    messages: int
    bytes: int
    server_version: str


def check_options(options: BenchOptions) -> None:
    """Refuse a bad run before pgbench spends its seconds."""
    if not options.modes or not options.losses:
        raise ConfigError("--modes and --loss need at least one value each")
    if any(not 0 <= loss < 1 for loss in options.losses):
        raise ConfigError("loss rates must be in [0, 1)")
    FaultPlan(drop=max(options.losses), duplicate=options.duplicate, delay=options.delay)
    if options.nodes not in (1, 3):
        raise ConfigError(f"--nodes must be 1 or 3, not {options.nodes}")
    if not 1 <= options.instances <= options.processes:
        raise ConfigError("--instances (per participant) must be between 1 and --processes")
    if options.transfers < 1:
        raise ConfigError("--transfers must be at least 1")
    if options.rate is not None and options.rate <= 0:
        raise ConfigError("--rate must be positive")
    nats_binary.check_sync_interval(options.sync_interval)


def run_bench(options: BenchOptions, workdir: Path, hooks: Hooks | None = None) -> dict:
    """The whole bench as a stable dict; `workdir` holds the servers' data and the logs."""
    hooks = hooks or Hooks()
    check_options(options)
    baseline: TpcbResult | None = None
    with _sigterm_as_interrupt():
        if not options.skip_postgres:
            baseline = run_baseline(options, workdir / "pgdata", hooks)
        runs, commands = [], []
        points = [(m, loss, 1) for m in options.modes for loss in options.losses]
        points += [(m, 0.0, factor) for factor in options.scales for m in options.modes]
        for mode, loss, factor in points:
            with_projectors = not runs and mode is Mode.JETSTREAM and loss == 0
            scaled = dataclasses.replace(options, transfers=options.transfers * factor)
            run, used = run_point(scaled, mode, loss, workdir, hooks, with_projectors)
            run["scale"] = factor
            runs.append(run)
            commands = commands or used  # the other points differ only in their flags
    nats_version = runs[0].pop("server_version")
    for run in runs[1:]:
        run.pop("server_version")
    if baseline is not None:
        commands = [baseline.init_command, baseline.command, *commands]
    pg = _baseline_dict(baseline) if baseline else None
    for run in runs:
        run["vs_postgres"] = round(run["throughput_per_s"] / pg["tps"], 4) if pg else None
    return {
        "baseline": pg,
        "runs": runs,
        "ratio": runs[0]["vs_postgres"],
        "valid": all(run["valid"] for run in runs),
        "commands": commands,
        "machine": _machine(baseline, nats_version),
    }


def run_baseline(options: BenchOptions, data_dir: Path, hooks: Hooks) -> TpcbResult:
    hooks.phase(
        f"PostgreSQL: pgbench TPC-B, scale {options.pg_scale}, {options.pg_clients} clients, "
        f"{options.pg_seconds} s"
    )
    try:
        with EmbeddedPostgres(data_dir) as server:
            return run_tpcb(
                server,
                clients=options.pg_clients,
                threads=options.pg_threads,
                seconds=options.pg_seconds,
                scale=options.pg_scale,
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # scale 10 is about 160 MB


def serve_args(options: BenchOptions, mode: Mode, loss: float, stats_dir: Path) -> list[str]:
    plan = FaultPlan(
        drop=loss,
        duplicate=options.duplicate,
        delay=options.delay,
        max_delay=options.max_delay,
        seed=options.seed,
    )
    args = ["--mode", str(mode), "--stats-dir", str(stats_dir)]
    args += ["--replay-after", f"{options.replay_after:g}"] if mode is Mode.CORE else []
    return args + (["--faults", plan.encode()] if plan.active else [])


def run_point(
    options: BenchOptions,
    mode: Mode,
    loss: float,
    workdir: Path,
    hooks: Hooks,
    with_projectors: bool = False,
) -> tuple[dict, list[str]]:
    """One mode at one loss rate, on a fresh cluster: every point starts from the same state."""
    banks = default_banks(options.participants, options.accounts)
    names = [b.participant for b in banks]
    point = workdir / f"{mode}-{loss:g}-{options.transfers}"
    stats_dir = point / "stats"
    stats_dir.mkdir(parents=True)
    hooks.phase(
        f"natsbank {mode} mode, loss {loss:.0%}: {options.nodes} nats-server node(s), "
        f"{options.processes} service processes, {options.instances} instance(s) per participant"
    )
    late = names[-1:] if options.process_faults.receiver_down else []
    with LocalCluster(
        point / "nats", nodes=options.nodes, sync_interval=options.sync_interval, remove_data=True
    ) as cluster:
        # The node count is known here: "auto" could see a fresh cluster's gossip half done.
        topology = quick_redelivery(options.replay_after, replicas=options.nodes)
        partitions = run_sync(
            bootstrap(cluster.url, banks, funding=GENEROUS_FUNDING, topology=topology)
        )
        before = run_sync(ledger_state(cluster.url, partitions))
        args = tuple(serve_args(options, mode, loss, stats_dir))
        logs = workdir / "logs" / point.name
        on_time = [n for n in names if n not in late]
        procs = start_layout(
            cluster.url, on_time, options.processes, options.instances, logs, serve_args=args
        )
        env = f"NATS_URL={shlex.quote(cluster.url)}"
        commands = [*_cluster_commands(cluster), *(f"{env} {shlex.join(p.args)}" for p in procs)]
        try:
            hooks.phase(f"natsbank: pushing {options.transfers} transfers")
            idle = run_sync(_idle_traffic(cluster))
            traffic_before = server_traffic(cluster)
            workload = functools.partial(
                drive, cluster.url, banks, options.transfers, partitions=partitions,
                seed=options.seed, rate=options.rate, reject_share=options.reject_share,
                progress=hooks.acked,
                settle_timeout=max(options.settle_timeout, options.transfers / 100),
            )  # fmt: skip
            result, disturbed = run_sync(
                drive_disturbed(
                    workload,
                    options.process_faults,
                    cluster,
                    procs,
                    lambda: start_services(cluster.url, late, 1, logs / "late", serve_args=args),
                    options.seed,
                )
            )
            traffic = traffic_between(traffic_before, server_traffic(cluster))
            after = run_sync(ledger_state(cluster.url, partitions))
            projectors = (
                measure_projectors(  # after the headline figures: they ran without it
                    options.projector, cluster.url, banks, partitions,
                    transfers=options.transfers, seed=options.seed,
                    reject_share=options.reject_share, workdir=workdir, phase=hooks.phase,
                )
                if with_projectors
                else []
            )  # fmt: skip
        finally:
            stop_services(procs)
    run = _run_dict(options, names, result, before, after)
    counters = service_counters(stats_dir)
    run |= transport_figures(
        str(mode), loss, result.measurement.completed, counters, traffic, disturbed
    )
    run["server_idle_messages_per_s"] = idle
    run["name"] = f"natsbank {mode} R{after.replicas}"
    run["mode"] = str(mode)
    if with_projectors and options.projector is not ProjectorChoice.NONE:
        run["projectors"] = projectors
        run["valid"] = run["valid"] and all(p["valid"] for p in projectors)
    return run, commands


async def _idle_traffic(cluster: ClusterInfo, seconds: float = 2.0) -> float:
    """Messages/s through the servers with the services up and no work: heartbeats, RAFT,
    idle fetches. It runs all along, so short runs carry more of it per transfer."""
    before = server_traffic(cluster)
    await asyncio.sleep(seconds)
    traffic = traffic_between(before, server_traffic(cluster))
    return round((traffic["in_msgs"] + traffic["out_msgs"]) / seconds, 1)


async def ledger_state(url: str, partitions: int) -> LedgerState:
    """Messages and bytes stored in the ledger streams (KV buckets not counted)."""
    nc = await connect(url)
    try:
        js = nc.jetstream()
        infos = [await js.stream_info(ledger_stream(k)) for k in range(partitions)]
        version = nc.connected_server_version
        return LedgerState(
            replicas=infos[0].config.num_replicas or 1,
            messages=sum(i.state.messages for i in infos),
            bytes=sum(i.state.bytes for i in infos),
            server_version=f"{version.major}.{version.minor}.{version.patch}",
        )
    finally:
        await nc.close()


def is_valid(report: dict) -> bool:
    return all(run["valid"] for run in report["runs"])


def _run_dict(
    options: BenchOptions,
    names: list[str],
    result: ScenarioResult,
    before: LedgerState,
    after: LedgerState,
) -> dict:
    m, audit = result.measurement, result.audit
    lost = len(m.unfinished)
    double_applied = len(audit.violations.get("I3", []))
    messages = after.messages - before.messages
    per_transfer = m.completed or 1
    return {
        "nodes": options.nodes,
        "replicas": after.replicas,
        "sync_interval": options.sync_interval or "default (2m)",
        "participants": names,
        "instances": options.instances,
        "processes": options.processes,
        "rate": options.rate,
        "seed": options.seed,
        "transfers": result.transfers,
        "acked": result.acked,
        "completed": m.completed,
        "seconds": round(m.seconds, 3),
        "throughput_per_s": round(m.throughput, 1),
        "throughput_99_per_s": round(m.throughput_99, 1),
        "p50_ms": m.percentile(50),
        "p99_ms": m.percentile(99),
        "max_ms": float(m.latency_ms.get_max_value()) if m.completed else 0.0,
        "outcomes": dict(m.outcomes),
        "causes": dict(m.causes),
        "lost": lost,
        "double_applied": double_applied,
        "audit_ok": audit.ok,
        "violations": {k: v[:5] for k, v in audit.violations.items() if v},
        "ledger_messages": messages,
        "ledger_messages_per_transfer": round(messages / per_transfer, 2),
        "ledger_bytes_per_transfer": round((after.bytes - before.bytes) / per_transfer, 1),
        "quiescent": result.quiescent,
        "wall_seconds": round(result.wall_seconds, 2),
        "valid": audit.ok and lost == 0 and result.acked == result.transfers,
        "server_version": after.server_version,
    }


def _baseline_dict(result: TpcbResult) -> dict:
    return {
        "name": "PostgreSQL pgbench TPC-B",
        "tps": result.tps,
        "latency_avg_ms": result.latency_avg_ms,
        "transactions": result.transactions,
        "failed_transactions": result.failed_transactions,
        "clients": result.clients,
        "threads": result.threads,
        "seconds": result.seconds,
        "scale": result.scale,
        "pgbench_version": result.pgbench_version,
        "command": result.command,
        "init_command": result.init_command,
    }


def _cluster_commands(cluster: ClusterInfo) -> list[str]:
    binary = str(nats_binary.find_nats_server())
    return [shlex.join([binary, "-c", node.config_path]) for node in cluster.nodes]


def _machine(baseline: TpcbResult | None, nats_version: str) -> dict:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nats_server": nats_version,
        "pgbench": baseline.pgbench_version if baseline else None,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every server we started."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
