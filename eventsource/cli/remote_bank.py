"""`natsbank remote-bank PARTICIPANT`: the simulated remote bank behind a proxy participant
(core/remote.py), as a process of its own, for `serve --remote-bank external`."""

from __future__ import annotations

import os

import msgspec
import typer

from eventsource.adapters.log_format import configure_logging
from eventsource.adapters.registry import require_participant_name
from eventsource.adapters.remote_bank import RemoteBankResponder
from eventsource.cli.common import (
    console,
    err_console,
    nats_connection,
    run,
    settings,
    stop_on_signals,
)
from eventsource.cli.options import (
    remote_delay_option,
    remote_duplicate_option,
    remote_loss_option,
    remote_plan,
    remote_reject_option,
)
from eventsource.core.permissions import Identity, Role
from eventsource.core.remote import RemoteMode


def register(app: typer.Typer) -> None:
    app.command("remote-bank")(remote_bank)


def remote_bank(
    participant: str = typer.Argument(..., help="The participant whose remote bank this is."),
    remote_delay: str = remote_delay_option(),
    remote_loss: float = remote_loss_option(),
    remote_duplicate: float = remote_duplicate_option(),
    remote_reject: float = remote_reject_option(),
    seed: int = typer.Option(0, "--seed", help="Seeds the answers' fates and the declines."),
    as_json: bool = typer.Option(False, "--json", help="Print its counts as JSON at the end."),
) -> None:
    """Answer the participant's proxy (`serve --remote-bank external`) until SIGTERM or Ctrl-C,
    then print what it decided, applied and voided."""
    configure_logging("INFO", "text")
    require_participant_name(participant)
    plan = remote_plan(
        RemoteMode.EXTERNAL, remote_delay, remote_loss, remote_duplicate, remote_reject, seed=seed
    )
    config = settings()

    async def main() -> dict:
        stop = stop_on_signals()
        # The remote bank's connector holds the participant's own service credential: the link
        # stays inside that bank's account (core/permissions.py).
        async with nats_connection(config, Identity(Role.SERVICE, participant)) as nc:
            responder = RemoteBankResponder(nc, participant, plan, salt=str(os.getpid()))
            await responder.start()
            err_console.print(f"remote bank of {participant} answering", highlight=False)
            await stop.wait()
            await responder.stop()
            return responder.figures()

    figures = run(main)
    if as_json:
        console.print_json(msgspec.json.encode(figures).decode())
    else:
        console.print(" ".join(f"{k}={v}" for k, v in figures.items()), highlight=False)
