"""`natsbank accounts open|fund|close|list`."""

from __future__ import annotations

import typer
from rich.table import Table

from eventsource.adapters.registry import is_registered
from eventsource.adapters.signing_key_file import given_signing_key
from eventsource.adapters.topology import load_topology
from eventsource.cli.common import console, on_ledger, print_json, settings
from eventsource.cli.options import AccountArg, ParticipantArg, participant_option, store_option
from eventsource.cli.render import account_line
from eventsource.core.events import AccountSnapshot
from eventsource.core.money import format_amount
from eventsource.core.permissions import Identity, Role
from eventsource.services.ledger import Ledger

app = typer.Typer(help="Open, fund, close and list accounts.", no_args_is_help=True)


AUDIT = Identity(Role.AUDIT)
FUNDING = Identity(Role.FUNDING)


@app.command("open")
def open_(
    participant: ParticipantArg,
    account: AccountArg,
    currency: str = typer.Option("EUR", "--currency", "-c", help="ISO 4217 code."),
    fund: str | None = typer.Option(None, "--fund", help="Initial funding, e.g. 100.00."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Open an account (registering the participant if it is new)."""
    config = settings(store=store)

    topology = load_topology(config.streams_file or None)

    async def open_account(ledger: Ledger):
        # Registering is the admin's (streams init, dev up): the funding credential may not,
        # so a registered participant is not registered again.
        if not await is_registered(ledger.nc, participant):
            key = given_signing_key(config.signing_keys, participant)
            await ledger.register(topology, participant, signing_key=key)
        return await ledger.open_account(participant, account, currency, fund)

    snapshot = AccountSnapshot.of(on_ledger(config, FUNDING, open_account))
    print_json(snapshot) if as_json else console.print(f"opened {account_line(snapshot)}")


@app.command("fund")
def fund(
    participant: ParticipantArg,
    account: AccountArg,
    amount: str,
    reference: str | None = typer.Option(None, "--ref", help="Funding reference."),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Create money on an account. Funding is the only way money enters the ledger."""
    config = settings(store=store)

    funded = on_ledger(
        config, FUNDING, lambda ledger: ledger.fund_account(participant, account, amount, reference)
    )
    snapshot = AccountSnapshot.of(funded)
    print_json(snapshot) if as_json else console.print(f"funded {account_line(snapshot)}")


@app.command("close")
def close(
    participant: ParticipantArg,
    account: AccountArg,
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Close an account: no new transfers; those in flight still settle."""
    config = settings(store=store)

    closed = on_ledger(config, FUNDING, lambda ledger: ledger.close_account(participant, account))
    snapshot = AccountSnapshot.of(closed)
    print_json(snapshot) if as_json else console.print(f"closed {account_line(snapshot)}")


@app.command("list")
def list_(
    participant: str | None = participant_option(),
    as_json: bool = typer.Option(False, "--json"),
    store: str | None = store_option(),
) -> None:
    """Accounts with balances, from the accounts KV bucket."""
    config = settings(store=store)

    snapshots = on_ledger(config, AUDIT, lambda ledger: ledger.accounts(participant))
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
