"""`natsbank accounts open|fund|close|list`."""

from __future__ import annotations

import typer
from rich.table import Table

from eventsource.adapters.provision import register_participant
from eventsource.adapters.shared_provision import (
    register_shared_participant,
    require_shared_store,
)
from eventsource.adapters.topology import load_topology
from eventsource.cli.common import (
    console,
    nats_connection,
    partitions_of,
    print_json,
    run,
    settings,
)
from eventsource.cli.store import is_shared, store_option
from eventsource.core.events import AccountSnapshot
from eventsource.core.money import format_amount
from eventsource.services import accounts as service
from eventsource.services.shared_client import list_shared_accounts
from eventsource.services.views import list_accounts

app = typer.Typer(help="Open, fund, close and list accounts.", no_args_is_help=True)


def _show(snapshot: AccountSnapshot) -> str:
    return (
        f"{snapshot.participant}/{snapshot.account} {snapshot.currency} "
        f"balance {snapshot.balance} pending debits {snapshot.pending_debits} "
        f"pending credits {snapshot.pending_credits}" + (" (closed)" if snapshot.closed else "")
    )


@app.command("open")
def open_(
    participant: str,
    account: str,
    currency: str = typer.Option("EUR", "--currency", "-c", help="ISO 4217 code."),
    fund: str | None = typer.Option(None, "--fund", help="Initial funding, e.g. 100.00."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Open an account (registering the participant if it is new)."""
    config = settings(store=store)

    async def main():
        async with nats_connection(config) as nc:
            topology = load_topology(config.streams_file or None)
            if is_shared(config):
                await require_shared_store(nc)
                await register_shared_participant(nc, topology, participant)
                return await service.open_account(
                    nc, 1, participant, account, currency, fund, shared=True
                )
            partitions = await partitions_of(nc)
            await register_participant(nc, topology, participant)
            return await service.open_account(nc, partitions, participant, account, currency, fund)

    snapshot = AccountSnapshot.of(run(main))
    print_json(snapshot) if as_json else console.print(f"opened {_show(snapshot)}")


@app.command("fund")
def fund(
    participant: str,
    account: str,
    amount: str,
    reference: str | None = typer.Option(None, "--ref", help="Funding reference."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Create money on an account. Funding is the only way money enters the ledger."""
    config = settings(store=store)
    shared = is_shared(config)

    async def main():
        async with nats_connection(config) as nc:
            partitions = await _partitions(nc, shared)
            return await service.fund_account(
                nc, partitions, participant, account, amount, reference, shared=shared
            )

    snapshot = AccountSnapshot.of(run(main))
    print_json(snapshot) if as_json else console.print(f"funded {_show(snapshot)}")


@app.command("close")
def close(
    participant: str,
    account: str,
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Close an account: no new transfers; those in flight still settle."""
    config = settings(store=store)
    shared = is_shared(config)

    async def main():
        async with nats_connection(config) as nc:
            partitions = await _partitions(nc, shared)
            return await service.close_account(nc, partitions, participant, account, shared=shared)

    snapshot = AccountSnapshot.of(run(main))
    print_json(snapshot) if as_json else console.print(f"closed {_show(snapshot)}")


async def _partitions(nc, shared: bool) -> int:
    if shared:
        await require_shared_store(nc)
        return 1  # unused by the shared store
    return await partitions_of(nc)


@app.command("list")
def list_(
    participant: str | None = typer.Option(None, "--participant", "-p"),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Accounts with balances, from the accounts KV bucket."""
    config = settings(store=store)

    async def main():
        async with nats_connection(config) as nc:
            if is_shared(config):
                await require_shared_store(nc)
                return await list_shared_accounts(nc, participant)
            return await list_accounts(nc, await partitions_of(nc), participant)

    snapshots = run(main)
    if as_json:
        print_json(snapshots)
        return
    table = Table(title="accounts")
    for column in (
        "participant",
        "account",
        "currency",
        "balance",
        "pending debits",
        "pending credits",
        "available",
        "closed",
    ):
        table.add_column(column, justify="right" if column[0] in "bpa" else "left")
    for s in snapshots:
        account = s.to_account()
        table.add_row(
            s.participant,
            s.account,
            s.currency,
            s.balance,
            s.pending_debits,
            s.pending_credits,
            format_amount(account.available, s.currency),
            "yes" if s.closed else "",
        )
    console.print(table)
