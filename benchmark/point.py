"""One benchmark point: a store (and for the independent store, a transport at a loss
rate) on a fresh cluster, with the same banks, funding and workload as every other point.

The shared store sends no protocol messages, so there is nothing for a loss rate to drop: it
runs at 0% loss. Its figures come from the same places as the independent store's: the
stream's timestamps (ACK to final), the servers' /varz, the services' counters, its audit.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path

import msgspec

from benchmark.archiver import archiver_for, history_for
from benchmark.faults import (
    drive_disturbed,
    server_traffic,
    service_counters,
    transport_figures,
)
from benchmark.options import (
    GENEROUS_FUNDING,
    BenchOptions,
    Hooks,
    LedgerFootprint,
    Point,
)
from benchmark.projection import ProjectorChoice, measure_projectors
from benchmark.remote import remote_args
from benchmark.scenario import (
    ScenarioResult,
    bootstrap,
    default_banks,
    drive,
    run_sync,
    start_layout,
    start_services,
    stop_services,
    warm_up,
)
from benchmark.servers import cluster_commands, idle_traffic, ledger_footprint, work_and_reads
from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from eventsource.adapters.topology import quick_redelivery
from eventsource.core.faults import FaultPlan
from eventsource.settings import Store, Transport


def serve_args(options: BenchOptions, point: Point, stats_dir: Path) -> list[str]:
    args = ["--store", str(point.store), "--stats-dir", str(stats_dir)]
    if point.store is Store.SHARED:
        return args
    plan = FaultPlan(
        drop=point.loss,
        duplicate=options.duplicate,
        delay=options.delay,
        max_delay=options.max_delay,
        seed=options.seed,
    )
    args += ["--mode", str(point.transport)]
    args += (
        ["--resend-after", f"{options.resend_after:g}"] if point.transport is Transport.CORE else []
    )
    return args + (["--faults", plan.encode()] if plan.active else []) + remote_args(options.remote)


def run_point(
    options: BenchOptions,
    point: Point,
    workdir: Path,
    hooks: Hooks,
    with_projectors: bool = False,
    tag: str = "",
) -> tuple[dict, list[str]]:
    """One point on a fresh cluster: every point starts from the same state. `tag` names its
    directory apart from another run of the same point (another durability, another rate)."""
    with_projectors = with_projectors and point.store is Store.INDEPENDENT
    name = f"{point.store}-{point.transport}-{point.loss:g}-{options.transfers}"
    where = workdir / (f"{tag}-{name}" if tag else name)
    stats_dir = where / "stats"
    stats_dir.mkdir(parents=True)
    what = (
        point.label
        if point.store is Store.SHARED
        else f"{point.transport} mode, loss {point.loss:.0%}"
    )
    hooks.phase(
        f"natsbank {what}: {options.nodes} nats-server node(s), "
        f"{options.processes} service processes, {options.instances} instance(s) per participant"
    )
    with LocalCluster(
        where / "nats", nodes=options.nodes, sync_interval=options.sync_interval, remove_data=True
    ) as cluster:
        logs = workdir / "logs" / where.name
        projector_dir = workdir if with_projectors else None
        measured = _measure_on(cluster, options, point, logs, stats_dir, hooks, projector_dir)
    names = [b.participant for b in measured.banks]
    result, after = measured.result, measured.after
    run = _run_dict(options, names, result, measured.before, after)
    counters = service_counters(stats_dir)
    run |= transport_figures(
        point.transport,
        point.loss,
        result.measurement.completed,
        counters,
        measured.traffic,
        measured.disturbed,
    )
    run["server_idle_messages_per_s"] = measured.idle
    run["warmup_s"] = options.warmup_s
    run["warmup_transfers"], warmup_unfinished = measured.warmed
    run["history_transfers"] = run["warmup_transfers"] + run["acked"]
    run["valid"] = run["valid"] and not warmup_unfinished
    run["name"] = f"natsbank {point.label} R{after.replicas}"
    run["mode"] = str(point.transport)
    run["store"] = str(point.store)
    if with_projectors and options.projector is not ProjectorChoice.NONE:
        run["projectors"] = measured.projectors
        run["valid"] = run["valid"] and all(p["valid"] for p in measured.projectors)
    return run, measured.commands


@dataclass
class Measured:
    banks: list
    result: ScenarioResult
    before: LedgerFootprint
    after: LedgerFootprint
    traffic: dict
    disturbed: dict
    idle: float
    commands: list[str]
    projectors: list
    warmed: tuple[int, int]  # the warm-up's transfers ACKed, and left unfinished


def _measure_on(
    cluster: ClusterInfo,
    options: BenchOptions,
    point: Point,
    logs: Path,
    stats_dir: Path,
    hooks: Hooks,
    projector_dir: Path | None,
) -> Measured:
    """Provision, start the services, push and settle the workload (with its process faults),
    and read what the servers and the ledger did."""
    banks = default_banks(options.participants, options.accounts)
    names = [b.participant for b in banks]
    late = names[-1:] if options.process_faults.receiver_down else []
    # The node count is known here: "auto" could see a fresh cluster's gossip half done.
    topology = msgspec.structs.replace(
        quick_redelivery(options.resend_after, replicas=options.nodes),
        history=history_for(options.horizon),
    )
    partitions = run_sync(
        bootstrap(
            cluster.url, banks, funding=GENEROUS_FUNDING, topology=topology, store=point.store
        )
    )
    before = run_sync(ledger_footprint(cluster.url, point.store, partitions))
    args = tuple(serve_args(options, point, stats_dir))
    on_time = [n for n in names if n not in late]
    procs = start_layout(
        cluster.url, on_time, options.processes, options.instances, logs, serve_args=args
    )
    archiver = (  # not among `procs`: the process faults kill services only
        [archiver_for(cluster.url, topology, logs / "archiver", logs)]
        if options.horizon != "forever" and point.store is Store.INDEPENDENT
        else []
    )
    env = f"NATS_URL={shlex.quote(cluster.url)}"
    started = [*procs, *archiver]
    commands = [*cluster_commands(cluster), *(f"{env} {shlex.join(p.args)}" for p in started)]
    try:
        warmed = _warm_up(cluster.url, banks, options, point, hooks)
        if warmed != (0, 0):
            before = run_sync(ledger_footprint(cluster.url, point.store, partitions))
        hooks.phase(f"natsbank: pushing {options.transfers} transfers")
        idle = run_sync(idle_traffic(cluster))
        traffic_before = server_traffic(cluster)
        quiet: dict = {}  # the servers' counters when the inboxes were last seen quiet

        def mark_quiet() -> None:
            quiet["traffic"] = server_traffic(cluster)

        workload = functools.partial(
            drive, cluster.url, banks, options.transfers, store=point.store,
            seed=options.seed, rate=options.rate, reject_share=options.reject_share,
            progress=hooks.acked,
            settle_timeout=options.settle_timeout or max(900.0, options.transfers / 100),
            on_quiet=mark_quiet,
        )  # fmt: skip

        def restart_late() -> list:
            return start_services(cluster.url, late, 1, logs / "late", serve_args=args)

        result, disturbed = run_sync(
            drive_disturbed(
                workload, options.process_faults, cluster, procs, restart_late, options.seed
            )
        )
        traffic = work_and_reads(traffic_before, quiet.get("traffic"), server_traffic(cluster))
        after = run_sync(ledger_footprint(cluster.url, point.store, partitions))
        projectors = (
            measure_projectors(  # after the headline figures: they ran without it
                options.projector, cluster.url, banks, partitions,
                transfers=options.transfers, seed=options.seed,
                reject_share=options.reject_share, workdir=projector_dir, phase=hooks.phase,
            )
            if projector_dir is not None
            else []
        )  # fmt: skip
    finally:
        stop_services([*procs, *archiver])
    return Measured(
        banks, result, before, after, traffic, disturbed, idle, commands, projectors, warmed
    )


def _warm_up(
    url: str, banks: list, options: BenchOptions, point: Point, hooks: Hooks
) -> tuple[int, int]:
    """The unmeasured load before the run (`--warmup`): ACKed and left unfinished."""
    if not options.warmup_s or options.rate is None:
        return 0, 0
    hooks.phase(f"natsbank: warming up, {options.warmup_s:g} s at {options.rate:g}/s")
    return run_sync(
        warm_up(
            url, banks, options.warmup_s, options.rate, store=point.store, seed=options.seed,
            reject_share=options.reject_share,
        )
    )  # fmt: skip


def _run_dict(
    options: BenchOptions,
    names: list[str],
    result: ScenarioResult,
    before: LedgerFootprint,
    after: LedgerFootprint,
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
        "p999_ms": m.percentile(99.9),
        "max_ms": float(m.latency_ms.get_max_value()) if m.completed else 0.0,
        "outcomes": dict(m.outcomes),
        "causes": dict(m.causes),
        "lost": lost,
        "double_applied": double_applied,
        "audit_ok": audit.ok,
        "violations": {k: v[:5] for k, v in audit.violations.items() if v},
        "ledger_messages": messages,
        "live_subjects": after.subjects,
        "horizon": options.horizon,
        "ledger_messages_per_transfer": round(messages / per_transfer, 2),
        "ledger_bytes_per_transfer": round((after.bytes - before.bytes) / per_transfer, 1),
        "quiescent": result.quiescent,
        "wall_seconds": round(result.wall_seconds, 2),
        "valid": audit.ok and lost == 0 and result.acked == result.transfers,
        "server_version": after.server_version,
    }
