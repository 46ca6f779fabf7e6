"""`natsbank dev up|down|status`: a local cluster of real nats-server processes under home/dev."""

from __future__ import annotations

import shutil
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from eventsource.adapters import postgres as pg
from eventsource.adapters.cluster import (
    ClusterInfo,
    cluster_running,
    cluster_status,
    dev_state_dir,
    load_cluster,
    start_cluster,
    stop_cluster,
)
from eventsource.adapters.credentials import credentials_dir
from eventsource.adapters.dev_archiver import start_archiver, stop_archiver
from eventsource.adapters.pki import CA_CERT, TLS_DIR
from eventsource.cli.dev_auth import DEV_PARTICIPANTS, dev_auth, provision_dev
from eventsource.cli.projection_db import dev_postgres_dir
from eventsource.core.errors import ConfigError
from eventsource.settings import load_settings

app = typer.Typer(
    help="Run a local NATS cluster (real nats-server processes) for development.",
    no_args_is_help=True,
)
console = Console()


@app.command()
def up(
    nodes: Annotated[int, typer.Option("--nodes", help="1, or 3 for an R3-capable cluster.")] = 1,
    sync_interval: Annotated[
        str | None,
        typer.Option(
            "--sync-interval",
            help="JetStream fsync interval, e.g. 1s or 'always' (server default: 2m).",
        ),
    ] = None,
    postgres: Annotated[
        bool, typer.Option("--postgres", help="Also start a local PostgreSQL for projections.")
    ] = False,
    participants: Annotated[
        list[str] | None,
        typer.Option(
            "--participant",
            "-p",
            help="A participant to create credentials for and register (repeat it; default "
            "bank-a and bank-b, with those of streams.yaml).",
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="No authorization: anyone may connect and do anything."),
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="TLS for clients and routes, with a CA and certificates generated under the "
            "dev state (commands trust that CA by themselves).",
        ),
    ] = False,
) -> None:
    """Start the dev cluster in the background; does nothing if it already runs.

    With authorization (the default) it generates an nkey per identity under the dev state,
    creates the streams and registers the participants; every command then finds its
    credential there."""
    if nodes not in (1, 3):  # checked first, or a running cluster would hide the mistake
        raise ConfigError(f"a dev cluster has 1 or 3 nodes, not {nodes}")
    if tls and no_auth:
        raise ConfigError("--tls goes with authorization: drop --no-auth")
    settings = load_settings()
    state_dir = dev_state_dir(settings)
    info = load_cluster(state_dir)
    if info is not None and cluster_running(info):
        if len(info.nodes) != nodes:
            raise ConfigError(
                f"a {len(info.nodes)}-node dev cluster is already running; "
                "`natsbank dev down` it first"
            )
        console.print(f"dev cluster already running ({len(info.nodes)} nodes)")
    else:
        auth = None if no_auth else dev_auth(settings, participants or list(DEV_PARTICIPANTS))
        with console.status(f"starting {nodes} nats-server node(s)"):
            info = start_cluster(state_dir, nodes, sync_interval=sync_interval, auth=auth, tls=tls)
        console.print(f"[green]dev cluster up[/green] ({nodes} nodes, state in {state_dir})")
        if tls:
            console.print(
                f"TLS on: CA {state_dir / TLS_DIR / CA_CERT} (NATSBANK_TLS_CA for other clients)",
                highlight=False,
                soft_wrap=True,
            )
        if auth is not None:
            with console.status("creating the streams, registering the participants"):
                provision_dev(settings, auth)
            console.print(
                f"authorization on: credentials in {credentials_dir(state_dir)}, "
                f"participants {', '.join(auth.participants)}",
                highlight=False,
                soft_wrap=True,
            )
    _print_urls(info)
    start_archiver(state_dir, info.url)  # idle until streams init declares a live horizon
    if postgres:
        server = pg.load(dev_postgres_dir(settings))
        if server is None:
            with console.status("starting PostgreSQL"):
                server = pg.start(dev_postgres_dir(settings) / "data")
        _print_postgres(server)


def _print_postgres(server: pg.PgServer) -> None:
    console.print(f"NATSBANK_PG_DSN={server.dsn}", highlight=False, soft_wrap=True)
    console.print(f"psql: {server.psql_command}", highlight=False, soft_wrap=True)


@app.command()
def down(
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep the JetStream data for the next `up`.")
    ] = False,
) -> None:
    """Stop the dev cluster and, unless --keep-data, delete its data."""
    settings = load_settings()
    state_dir = dev_state_dir(settings)
    if pg.stop_from_state(dev_postgres_dir(settings)):
        console.print("dev PostgreSQL stopped")
    stop_archiver(state_dir)
    info = load_cluster(state_dir)
    if info is not None:
        stop_cluster(info, remove_data=not keep_data)
        console.print("dev cluster stopped")
    else:
        console.print("no dev cluster running")
    if not keep_data:
        shutil.rmtree(state_dir, ignore_errors=True)


@app.command()
def status(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each node and its JetStream health; exit 1 if the cluster is not running."""
    settings = load_settings()
    info = load_cluster(dev_state_dir(settings))
    running = info is not None and cluster_running(info)
    nodes = cluster_status(info) if info is not None else []
    server = pg.load(dev_postgres_dir(settings))
    if json:
        report = {
            "running": running,
            "url": info.url if info is not None else None,
            "nodes": nodes,
            "postgres": {"dsn": server.dsn, "psql": server.psql_command} if server else None,
        }
        typer.echo(msgspec.json.encode(report).decode())
    elif info is None or not running:
        console.print("no dev cluster running: `natsbank dev up`")
    else:
        table = Table("node", "pid", "client port", "monitor port", "alive", "jetstream")
        for node, spec in zip(nodes, info.nodes, strict=True):
            alive = "[green]yes[/green]" if node.alive else "[red]no[/red]"
            health = node.jetstream if node.jetstream == "ok" else f"[red]{node.jetstream}[/red]"
            table.add_row(
                node.name,
                str(node.pid),
                str(spec.client_port),
                str(spec.monitor_port),
                alive,
                health,
            )
        console.print(f"NATS_URL={info.url}", highlight=False, soft_wrap=True)
        console.print(table)
        if server is not None:
            _print_postgres(server)
    if not running:
        # Not typer.Exit: under standalone_mode=False click returns its code instead of exiting.
        raise SystemExit(1)


def _print_urls(info: ClusterInfo) -> None:
    console.print(f"NATS_URL={info.url}", highlight=False, soft_wrap=True)
    for url in info.monitor_urls:
        console.print(f"monitoring: {url}", highlight=False, soft_wrap=True)
