"""`natsbank status ID`: both sides' current record of one transfer, read exactly."""

from __future__ import annotations

import typer

from eventsource.cli.common import (
    console,
    nats_connection,
    partitions_of,
    print_json,
    run,
    settings,
)
from eventsource.core.errors import NatsbankError
from eventsource.core.events import TransferState
from eventsource.services.client import transfer_views
from eventsource.services.views import list_transfers


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def describe(state: TransferState) -> str:
    text = f"{state.outcome or 'pending'} ({state.side} phase {state.phase})"
    if state.cause:
        text += f" cause {state.cause}: {state.detail}"
    return text


def state_json(state: TransferState) -> dict:
    return {
        "outcome": state.outcome,
        "phase": state.phase,
        "side": state.side,
        "cause": state.cause,
        "detail": state.detail,
        "amount": state.transfer.amount,
        "currency": state.transfer.currency,
        "debtor": f"{state.transfer.debtor.participant}/{state.transfer.debtor.account}",
        "creditor": f"{state.transfer.creditor.participant}/{state.transfer.creditor.account}",
    }


class UnknownTransfer(NatsbankError):
    exit_code = 1


def status(
    transfer_id: str,
    participant: str | None = typer.Option(
        None, "--participant", "-p", help="The submitter (found if omitted)."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The true current outcome, from the last event on each side's record."""
    config = settings()

    async def main():
        async with nats_connection(config) as nc:
            partitions = await partitions_of(nc)
            submitter = participant
            if submitter is None:
                found = await list_transfers(nc, partitions, f"*.out.{transfer_id}")
                if not found:
                    raise UnknownTransfer(f"unknown transfer {transfer_id}")
                submitter = next(iter(found)).split(".", 1)[0]
            return await transfer_views(nc, partitions, submitter, transfer_id)

    mine, theirs = run(main)
    if mine is None:
        raise UnknownTransfer(f"unknown transfer {transfer_id}")
    if as_json:
        print_json(
            {
                "id": transfer_id,
                "submitter": state_json(mine[0]) | {"sequence": mine[1]},
                "receiver": (state_json(theirs[0]) | {"sequence": theirs[1]}) if theirs else None,
            }
        )
        return
    console.print(
        f"{transfer_id}: {mine[0].transfer.amount} {mine[0].transfer.currency} "
        f"{state_json(mine[0])['debtor']} -> {state_json(mine[0])['creditor']}",
        highlight=False,
    )
    console.print(f"  submitter: {describe(mine[0])}", highlight=False)
    console.print(
        f"  receiver:  {describe(theirs[0]) if theirs else 'not received yet'}", highlight=False
    )
