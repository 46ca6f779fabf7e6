"""`natsbank streams init`: make JetStream match streams.yaml."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from eventsource.adapters.provision import Action
from eventsource.adapters.signing_key_file import read_signing_keys
from eventsource.adapters.topology import load_topology
from eventsource.cli.common import console, on_ledger, print_json, settings
from eventsource.cli.options import store_option
from eventsource.core.permissions import Identity, Role

app = typer.Typer(help="Create or update streams, KV buckets and consumers.", no_args_is_help=True)

_STYLE = {
    Action.CREATED: "green",
    Action.UPDATED: "yellow",
    Action.UNCHANGED: "dim",
    Action.REFUSED: "red",
}


@app.command("init")
def init(
    file: Path | None = typer.Option(None, "--file", "-f", help="streams.yaml to apply."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would change; change nothing."
    ),
    force: bool = typer.Option(False, "--force", help="Allow destructive changes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: str | None = store_option(),
    signing_keys: Path | None = typer.Option(
        None,
        "--signing-keys",
        help="Register the banks' and the operator's public signing keys of this file "
        "(signing-keys.json of `natsbank deploy keys`; env NATSBANK_SIGNING_KEYS) instead of "
        "dev keys; a participant it lacks is refused.",
    ),
) -> None:
    """Create or update everything declared in streams.yaml. Running it twice changes nothing."""
    config = settings(store=store, signing_keys=str(signing_keys) if signing_keys else None)
    topology = load_topology(file or (config.streams_file or None))
    keys = read_signing_keys(Path(config.signing_keys)) if config.signing_keys else None
    changes = on_ledger(
        config,
        Identity(Role.ADMIN),
        lambda ledger: ledger.provision(topology, dry_run=dry_run, force=force, signing_keys=keys),
        provisioned=False,
    )
    if as_json:
        print_json(
            [
                {"kind": c.kind, "name": c.name, "action": c.action, "detail": c.detail}
                for c in changes
            ]
        )
    else:
        table = Table(title="streams init" + (" (dry run)" if dry_run else ""))
        for column in ("kind", "name", "action", "detail"):
            table.add_column(column)
        for c in changes:
            table.add_row(c.kind, c.name, f"[{_STYLE[c.action]}]{c.action}[/]", c.detail)
        console.print(table)
    if any(c.action is Action.REFUSED for c in changes):
        raise typer.Exit(2)
