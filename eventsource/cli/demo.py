"""`natsbank demo`: the main job, end to end, on an embedded 3-node cluster."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.panel import Panel
from rich.progress import Progress
from rich.table import Table

from benchmark.demo import DemoOptions, run_demo
from eventsource.adapters.cluster import dev_state_dir
from eventsource.cli import edge
from eventsource.cli.common import console, print_json, settings
from eventsource.cli.options import store_option


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    transfers: int = typer.Option(
        3000,
        "--transfers",
        "-n",
        help="Random transfers to push.",
        callback=edge.checked(edge.transfers, "--transfers"),
    ),
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
    state_dir = dev_state_dir(config) if keep else Path(tempfile.mkdtemp(prefix="natsbank-demo-"))
    options = DemoOptions(
        transfers=transfers,
        participants=participants,
        instances=instances,
        nodes=nodes,
        keep=keep,
        postgres=postgres,
        store=config.store,
    )
    with Progress(console=console, disable=as_json, transient=True) as progress:
        task = progress.add_task("transfers ACKed", total=transfers)
        summary = run_demo(
            options,
            state_dir,
            started=lambda url: as_json or console.print(f"cluster: {nodes} node(s) at {url}"),
            acked=lambda n: progress.advance(task, n),
        )
    if as_json:
        print_json(summary)
    else:
        _print(summary)
        if keep:
            console.print(
                f"cluster left running; try `natsbank accounts list`, "
                f"`natsbank serve {' '.join(summary['participants'])}`; stop with "
                "`natsbank dev down`"
            )
    if not summary["ok"]:
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
