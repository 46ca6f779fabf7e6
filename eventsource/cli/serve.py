"""`natsbank serve PARTICIPANT`: run one instance of a participant (start several for scale)."""

from __future__ import annotations

import asyncio
import enum
import logging

import typer

from eventsource.cli.common import (
    err_console,
    nats_connection,
    partitions_of,
    run,
    settings,
    stop_on_signals,
)
from eventsource.core.errors import ConfigError
from eventsource.services.participant import ParticipantService


class Mode(enum.StrEnum):
    JETSTREAM = "jetstream"
    CORE = "core"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    participants: list[str] = typer.Argument(..., help="Participant(s) this instance serves."),
    mode: Mode = typer.Option(Mode.JETSTREAM, "--mode", help="Transport mode."),
    fetch_batch: int | None = typer.Option(None, "--fetch-batch", help="Messages per fetch."),
    log_level: str = typer.Option("INFO", "--log-level"),
) -> None:
    """Serve the participants' inboxes until SIGTERM or Ctrl-C. Instances share the work."""
    if mode is Mode.CORE:
        raise ConfigError("core mode is not implemented yet; use --mode jetstream")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config = settings(fetch_batch=fetch_batch)

    async def main() -> None:
        stop = stop_on_signals()
        async with nats_connection(config) as nc:
            partitions = await partitions_of(nc)
            services = [
                ParticipantService(nc, p, partitions, fetch_batch=config.fetch_batch)
                for p in participants
            ]
            err_console.print(f"serving {', '.join(participants)} ({partitions} partition(s))")
            await asyncio.gather(*(s.run(stop) for s in services))

    run(main)
