"""`natsbank demo`: the main job, end to end, on an embedded 3-node cluster."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table

from benchmark.scenario import (
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
from eventsource.adapters.cluster import LocalCluster, dev_state_dir
from eventsource.cli.common import console, print_json, settings
from eventsource.cli.options import store_option
from eventsource.core.errors import UsageError
from eventsource.settings import Store


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    transfers: int = typer.Option(3000, "--transfers", "-n", help="Random transfers to push."),
    participants: int = typer.Option(4, "--participants", min=2, max=26),
    instances: int = typer.Option(
        2, "--instances", min=1, max=8, help="Service processes, each serving every participant."
    ),
    nodes: int = typer.Option(3, "--nodes", help="1 or 3 nats-server nodes."),
    keep: bool = typer.Option(
        False, "--keep", help="Leave the cluster running as the dev cluster."
    ),
    postgres: bool = typer.Option(
        False, "--postgres", help="Also project into a local PostgreSQL and check I6."
    ),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Start a cluster, open accounts, run services, push transfers, measure and audit."""
    config = settings(store=store)
    if postgres and config.store is not Store.INDEPENDENT:
        raise UsageError(f"--postgres: the {config.store} store has no projection")
    state_dir = dev_state_dir(config) if keep else Path(tempfile.mkdtemp(prefix="natsbank-demo-"))
    banks = default_banks(participants)
    names = [b.participant for b in banks]
    quiet = as_json
    with LocalCluster(state_dir, nodes=nodes, remove_data=not keep, keep_running=keep) as cluster:
        if not quiet:
            console.print(f"cluster: {nodes} node(s) at {cluster.url}")
        partitions = run_sync(bootstrap(cluster.url, banks, store=config.store))
        serve_args = ("--store", config.store.value)
        procs = start_services(
            cluster.url, names, instances, state_dir / "logs", serve_args=serve_args
        )
        server = pg.start(state_dir / "postgres" / "data") if postgres else None
        if server is not None:
            procs += start_projector(cluster.url, server.dsn, state_dir / "logs")
        try:
            with Progress(console=console, disable=quiet, transient=True) as progress:
                task = progress.add_task("transfers ACKed", total=transfers)
                result = run_sync(
                    drive(
                        cluster.url,
                        banks,
                        transfers,
                        store=config.store,
                        progress=lambda n: progress.advance(task, n),
                    )
                )
            projection = (
                run_sync(check_projection(cluster.url, partitions, server.dsn))
                if server is not None
                else None
            )
        finally:
            stop_services(procs)
            if server is not None and not keep:
                pg.stop(Path(server.data_dir))
    m, audit = result.measurement, result.audit
    summary = {
        "nodes": nodes,
        "store": config.store.value,
        "participants": names,
        "instances": instances,
        "transfers": transfers,
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
    }
    if as_json:
        print_json(summary)
    else:
        _print(summary)
        if keep:
            console.print(
                f"cluster left running; try `natsbank accounts list`, "
                f"`natsbank serve {' '.join(names)}`; stop with `natsbank dev down`"
            )
    if not audit.ok or m.unfinished or projection:
        raise typer.Exit(1)


def _print(s: dict) -> None:
    table = Table(title="natsbank demo", show_header=False)
    table.add_column(justify="right")
    table.add_column()
    rows = [
        (
            "cluster",
            f"{s['nodes']} nats-server node(s), {s['instances']} service processes "
            f"serving {', '.join(s['participants'])}, {s['store']} store",
        ),
        (
            "transfers",
            f"{s['transfers']} submitted, {s['acked']} ACKed, {s['completed']} final, "
            f"{s['unfinished']} unfinished",
        ),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))),
        ("rejection causes", ", ".join(f"{k} {v}" for k, v in sorted(s["causes"].items()))),
        ("throughput", f"{s['throughput_per_s']} transfers/s (ACK to final on both sides)"),
        ("latency", f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms"),
        ("audit I1-I5, I7", "[green]clean[/]" if s["audit_ok"] else f"[red]{s['violations']}[/]"),
    ]
    if s["projection"] is not None:
        p = s["projection"]
        rows.append(
            (
                "projection I6",
                "[green]equals the state[/]" if p["i6_ok"] else f"[red]{p['differences']}[/]",
            )
        )
        rows.append(("psql", p["psql"]))
    for key, value in rows:
        table.add_row(key, value)
    console.print(Panel(table))
