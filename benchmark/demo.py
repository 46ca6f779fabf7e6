"""`natsbank demo`, the main job end to end: a cluster, the store, the banks' accounts, real
service processes (and a projector), a random workload, its measurement and the audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.scenario import (
    ScenarioResult,
    bootstrap,
    check_projection,
    default_banks,
    drive,
    run_sync,
    start_projector,
    start_services,
    stop_services,
)
from eventsource.adapters import postgres as pg
from eventsource.adapters.cluster import LocalCluster
from eventsource.settings import Store


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    transfers: int = 3000
    participants: int = 4
    instances: int = 2  # service processes, each serving every participant
    nodes: int = 3
    keep: bool = False  # leave the cluster running as the dev cluster
    postgres: bool = False  # also project into a local PostgreSQL and check I6
    store: Store = Store.INDEPENDENT


def run_demo(
    options: DemoOptions,
    state_dir: Path,
    *,
    started: Callable[[str], None] = lambda url: None,
    acked: Callable[[int], None] = lambda n: None,
) -> dict:
    """Run it; the summary says what happened (`ok` is False on any loss or violation)."""
    banks = default_banks(options.participants)
    names = [b.participant for b in banks]
    keep = options.keep
    with LocalCluster(
        state_dir, nodes=options.nodes, remove_data=not keep, keep_running=keep
    ) as cluster:
        started(cluster.url)
        partitions = run_sync(bootstrap(cluster.url, banks, store=options.store))
        serve_args = ("--store", options.store.value)
        logs = state_dir / "logs"
        procs = start_services(cluster.url, names, options.instances, logs, serve_args=serve_args)
        server = pg.start(state_dir / "postgres" / "data") if options.postgres else None
        if server is not None:
            procs += start_projector(cluster.url, server.dsn, logs, store=options.store)
        try:
            workload = drive(
                cluster.url, banks, options.transfers, store=options.store, progress=acked
            )
            result = run_sync(workload)
            projection = (
                run_sync(check_projection(cluster.url, partitions, server.dsn, store=options.store))
                if server is not None
                else None
            )
        finally:
            stop_services(procs)
            if server is not None and not keep:
                pg.stop(Path(server.data_dir))
    return _summary(options, names, result, server, projection)


def _summary(options: DemoOptions, names, result: ScenarioResult, server, projection) -> dict:
    m, audit = result.measurement, result.audit
    return {
        "nodes": options.nodes,
        "store": options.store.value,
        "participants": names,
        "instances": options.instances,
        "transfers": options.transfers,
        "acked": result.acked,
        "completed": m.completed,
        "unfinished": len(m.unfinished),
        "outcomes": dict(m.outcomes),
        "causes": dict(m.causes),
        "throughput_per_s": round(m.throughput, 1),
        "p50_ms": m.percentile(50),
        "p99_ms": m.percentile(99),
        "audit_ok": audit.ok,
        "violations": {k: v[:5] for k, v in audit.violations.items() if v},
        "projection": None
        if server is None
        else {
            "dsn": server.dsn,
            "psql": server.psql_command,
            "i6_ok": not projection,
            "differences": projection[:5],
        },
        "ok": audit.ok and not m.unfinished and not projection,
    }
