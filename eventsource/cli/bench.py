"""`natsbank bench`: PostgreSQL's pgbench TPC-B, then natsbank, on this machine; one table."""

from __future__ import annotations

import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import typer
from rich.progress import Progress
from rich.table import Table

from eventsource.cli.common import console, err_console, print_json
from eventsource.services.bench import (
    BenchOptions,
    Hooks,
    Mode,
    check_options,
    is_valid,
    run_bench,
)
from eventsource.services.bench_projection import ProjectorChoice


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    mode: Mode = typer.Option(Mode.JETSTREAM, "--mode", help="Only jetstream exists so far."),
    transfers: int = typer.Option(20000, "--transfers", "-n", min=1, help="Transfers to push."),
    participants: int = typer.Option(4, "--participants", min=2, max=26),
    processes: int = typer.Option(2, "--processes", min=1, max=8, help="Service processes."),
    instances: int = typer.Option(
        1,
        "--instances",
        min=1,
        max=8,
        help="Instances of each participant, spread over the processes (2+: they share work).",
    ),
    nodes: int = typer.Option(3, "--nodes", help="1 or 3 nats-server nodes."),
    rate: float | None = typer.Option(
        None, "--rate", help="Target transfers/s; full speed if not given."
    ),
    sync_interval: str | None = typer.Option(
        None, "--sync-interval", help="nats-server fsync interval, e.g. 'always'; default 2m."
    ),
    pg_seconds: int = typer.Option(15, "--pg-seconds", min=1, help="pgbench -T."),
    pg_scale: int = typer.Option(10, "--pg-scale", min=1, help="pgbench -i -s."),
    pg_clients: int = typer.Option(8, "--pg-clients", min=1, help="pgbench -c."),
    skip_postgres: bool = typer.Option(
        False, "--skip-postgres", help="No baseline (quick runs); the ratio is then null."
    ),
    projector: ProjectorChoice = typer.Option(
        ProjectorChoice.NONE,
        "--projector",
        help="After the headline run (measured without it): a projector into this database, "
        "catching up the ledger, then following as many transfers again at full speed.",
    ),
    seed: int = typer.Option(1, "--seed", help="Shape of the random workload."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Measure natsbank against PostgreSQL pgbench TPC-B, one after the other, and audit."""
    options = BenchOptions(
        mode=mode,
        transfers=transfers,
        participants=participants,
        instances=instances,
        processes=processes,
        nodes=nodes,
        rate=rate,
        sync_interval=sync_interval,
        seed=seed,
        pg_seconds=pg_seconds,
        pg_scale=pg_scale,
        pg_clients=pg_clients,
        pg_threads=min(2, pg_clients),  # pgbench refuses more threads than clients
        skip_postgres=skip_postgres,
        projector=projector,
    )
    check_options(options)
    workdir = Path(tempfile.mkdtemp(prefix="natsbank-bench-"))
    valid = False
    try:
        with Progress(console=console, disable=as_json, transient=True) as progress:
            report = run_bench(options, workdir, _hooks(progress, transfers, quiet=as_json))
        report["commands"].insert(0, shlex.join(["natsbank", *sys.argv[1:]]))
        valid = is_valid(report)
    finally:
        logs = workdir / "logs"
        if valid or not logs.exists():
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            err_console.print(f"service logs kept in {logs}", highlight=False)
    if as_json:
        print_json(report)
    else:
        _print(report)
    if not valid:
        raise typer.Exit(1)


def _hooks(progress: Progress, total: int, *, quiet: bool) -> Hooks:
    task = None

    def acked(count: int) -> None:
        nonlocal task
        if task is None:
            task = progress.add_task("transfers ACKed", total=total)
        progress.advance(task, count)

    def phase(text: str) -> None:
        if not quiet:
            progress.console.print(text, highlight=False)

    return Hooks(phase=phase, acked=acked)


def _print(report: dict) -> None:
    table = Table(title="natsbank bench", caption=_machine_line(report["machine"]))
    table.add_column("system", no_wrap=True)
    table.add_column("TPS", justify="right")
    table.add_column("vs PG", justify="right")
    table.add_column("latency ms")
    table.add_column("checks")
    pg = report["baseline"]
    if pg:
        latency = f"avg {pg['latency_avg_ms']:.1f}"
        table.add_row(pg["name"], f"{pg['tps']:,.0f}", "1.00x", latency, "reference")
    for run in report["runs"]:
        table.add_row(
            run["name"],
            f"{run['throughput_per_s']:,.0f}",
            f"{report['ratio']:.2f}x" if report["ratio"] is not None else "-",
            f"p50 {run['p50_ms']:.0f}\np99 {run['p99_ms']:.0f}\nmax {run['max_ms']:.0f}",
            f"{_red_unless_zero(run['lost'])} lost\n"
            f"{_red_unless_zero(run['double_applied'])} applied 2x\n"
            + ("audit [green]clean[/]" if run["audit_ok"] else f"[red]{run['violations']}[/]"),
        )
    console.print(table)
    if pg:
        console.print(
            f"PostgreSQL: scale {pg['scale']}, {pg['clients']} clients, {pg['threads']} threads, "
            f"fsync on; {pg['transactions']:,} transactions in {pg['seconds']} s, "
            f"{pg['failed_transactions']} failed",
            highlight=False,
        )
    for run in report["runs"]:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(run["outcomes"].items()))
        console.print(
            f"natsbank: {run['nodes']} node(s), {run['processes']} service processes, "
            f"{run['instances']} instance(s) per participant, "
            f"{len(run['participants'])} participants, sync interval {run['sync_interval']}; "
            f"{run['completed']:,} of {run['transfers']:,} transfers final in "
            f"{run['seconds']:.1f} s ({outcomes}), ACK to confirmed on both sides; "
            f"{run['ledger_messages_per_transfer']} ledger messages per transfer",
            highlight=False,
        )
    for run in report["runs"]:
        if run.get("projectors"):
            console.print(_projector_table(run))
    console.print("commands:", highlight=False)
    for command in report["commands"]:
        console.print(f"  {command}", highlight=False, soft_wrap=True)


def _red_unless_zero(count: int) -> str:
    return f"[red]{count:,}[/]" if count else "[green]0[/]"


def _machine_line(machine: dict) -> str:
    return (
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), nats-server {machine['nats_server']}, "
        f"pgbench {machine['pgbench'] or '-'}, Python {machine['python']}"
    )


def _projector_table(run: dict) -> Table:
    table = Table(
        title="projector, measured after the run above (which ran without it)",
        caption="catch-up: the run's ledger as a backlog; live: as many transfers again at "
        "full speed while it follows; lag in events not applied and seconds behind",
    )
    for column in ("into", "catch-up", "live TPS", "lag p99", "lag max", "after final"):
        table.add_column(column, justify="left" if column == "into" else "right")
    table.add_column("checks")
    for p in run["projectors"]:
        live, rate = p["live"], p["catch_up"]["events_per_s"]
        table.add_row(
            p["backend"],
            f"{rate:,.0f} ev/s" if rate else "-",
            f"{live['transfers_per_s']:,.0f}",
            f"{live['lag_events_p99']:,} ev\n{live['lag_seconds_p99']:.2f} s",
            f"{live['lag_events_max']:,} ev\n{live['lag_seconds_max']:.2f} s",
            f"{live['catch_up_after_final_s']:.2f} s",
            f"{p['events_applied']:,}/{p['ledger_state_events']:,} events\n"
            + ("I6 [green]clean[/]" if p["i6_ok"] else f"[red]{p['i6_differences']}[/]"),
        )
    return table
