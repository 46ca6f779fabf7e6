"""`natsbank projections run|status|wait|rebuild`: the read side, into PostgreSQL or SQLite,
of either store (`--store`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import typer
from nats.aio.client import Client

from eventsource.bootstrap import open_ledger, projection_source
from eventsource.cli.common import (
    console,
    nats_connection,
    print_json,
    run,
    stop_on_signals,
)
from eventsource.cli.common import settings as load_config
from eventsource.cli.options import participant_option, seconds_option, store_option
from eventsource.cli.projection_db import open_projection, open_projection_db
from eventsource.core.errors import NatsbankError
from eventsource.core.permissions import Identity, Role
from eventsource.core.subjects import ledger_stream
from projections.consumers import backlog, delete_consumers
from projections.projector import FETCH_BATCH, Projector
from projections.read_your_writes import behind, leader_positions, wait_applied
from projections.source import Source
from projections.store import ProjectionDb

app = typer.Typer(
    help="The projector: the store's state events into PostgreSQL or SQLite, exactly once."
)

DSN = typer.Option(
    None, "--dsn", help="PostgreSQL URL (default: NATSBANK_PG_DSN, then `dev up --postgres`)."
)
SQLITE = typer.Option(None, "--sqlite", help="A directory: one SQLite file per participant.")
PARTICIPANT = participant_option("Project only this participant.")
NAME = typer.Option(None, "--name", help="Projection name (default: postgres|sqlite[_P]).")


PROJECTOR = Identity(Role.PROJECTOR)


class ProjectorBusy(NatsbankError):
    exit_code = 1


@contextlib.asynccontextmanager
async def _session(
    store: ProjectionDb, store_name: str | None, participant: str | None
) -> AsyncIterator[tuple[Client, Source]]:
    """A connection, what the configured store's projection follows, and the projection
    database open until the end."""
    config = load_config(store=store_name)
    async with nats_connection(config, PROJECTOR) as nc:
        source = projection_source(await open_ledger(nc, config.store), participant)
        await open_projection(store)
        try:
            yield nc, source
        finally:
            await store.close()


@app.command("run")
def run_projector(
    dsn: str | None = DSN,
    sqlite: Path | None = SQLITE,
    participant: str | None = PARTICIPANT,
    name: str | None = NAME,
    batch: int = typer.Option(
        FETCH_BATCH, "--batch", min=1, help="Events per fetch and transaction."
    ),
    stats: Path | None = typer.Option(
        None, "--stats", hidden=True, help="Write the projector's counts here as JSON at exit."
    ),
    store_name: str | None = store_option(),
) -> None:
    """Follow the store until SIGINT/SIGTERM (several may run: one is active, others wait)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store, projection = open_projection_db(dsn, sqlite, participant, name)

    async def main() -> None:
        stop = stop_on_signals()
        async with _session(store, store_name, participant) as (nc, source):
            projector = Projector(nc, store, source, name=projection, fetch_batch=batch)
            await projector.run(stop)
            if stats is not None:  # what `natsbank bench` counts as applied by this process
                stats.write_text(json.dumps(dataclasses.asdict(projector.stats)))

    run(main)


@app.command("status")
def status(
    dsn: str | None = DSN,
    sqlite: Path | None = SQLITE,
    participant: str | None = PARTICIPANT,
    name: str | None = NAME,
    as_json: bool = typer.Option(False, "--json"),
    store_name: str | None = store_option(),
) -> None:
    """Lag per followed stream: events not yet applied, and seconds since the last applied
    event."""
    store, projection = open_projection_db(dsn, sqlite, participant, name)

    async def main() -> list[dict]:
        async with _session(store, store_name, participant) as (nc, source):
            positions = {p.stream: p for p in await store.positions()}
            counts = await backlog(nc, projection, source.streams)
        rows = []
        now_ms = time.time() * 1000
        for k, count in counts.items():
            stream = source.streams[k]
            position = positions.get(stream)
            last = position.last_event_at if position else None
            rows.append(
                {
                    "projection": projection,
                    "consumer": f"projector_{projection}_{k}",
                    "stream": stream,
                    "position": position.seq if position else 0,
                    "pending": None if count is None else count[0] + count[1],
                    "lag_seconds": None if last is None else round((now_ms - last) / 1000, 3),
                }
            )
        return rows

    rows = run(main)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        pending = "no consumer" if row["pending"] is None else f"{row['pending']} pending"
        lag = (
            "nothing applied yet"
            if row["lag_seconds"] is None
            else f"last event applied was {row['lag_seconds']} s old"
        )
        console.print(
            f"{row['consumer']}: position {row['position']}, {pending}, {lag}", highlight=False
        )


@app.command("wait")
def wait(
    position: int = typer.Option(..., "--position", help="Stream position to wait for."),
    stream: str = typer.Option(
        ledger_stream(0),
        "--stream",
        help="The stream of that position (`KV_shared`: the shared store).",
    ),
    timeout: float = seconds_option(30.0, "--timeout", "Seconds before giving up (exit 1)."),
    dsn: str | None = DSN,
    sqlite: Path | None = SQLITE,
    participant: str | None = PARTICIPANT,
    name: str | None = NAME,
) -> None:
    """Read-your-writes: return once the projection has applied `--position` (as printed by
    `submit --wait`), so a query right after sees that outcome. The full projection, or the
    submitter's own, gets there; another participant's may not need to."""
    store, _ = open_projection_db(dsn, sqlite, participant, name)

    async def main() -> int:
        await open_projection(store)
        try:
            return (await wait_applied(store, {stream: position}, timeout))[stream]
        finally:
            await store.close()

    applied = run(main)
    if applied < position:
        console.print(f"projection is at {stream} position {applied}, not yet {position}")
        raise typer.Exit(1)
    console.print(f"projection has applied {stream} position {position} (now at {applied})")


@app.command("rebuild")
def rebuild(
    dsn: str | None = DSN,
    sqlite: Path | None = SQLITE,
    participant: str | None = PARTICIPANT,
    name: str | None = NAME,
    follow: bool = typer.Option(False, "--follow", help="Keep running after catching up."),
    store_name: str | None = store_option(),
) -> None:
    """Delete the consumers and the rows, then project again from the start of the store."""
    store, projection = open_projection_db(dsn, sqlite, participant, name)

    async def main() -> None:
        stop = stop_on_signals()
        async with _session(store, store_name, participant) as (nc, source):
            if not await store.try_lead(projection):
                raise ProjectorBusy(f"a projector of {projection} is running: stop it first")
            targets = await leader_positions(nc, source)
            await delete_consumers(nc, projection, source.streams)
            await store.reset()
            projector = Projector(nc, store, source, name=projection)
            task = asyncio.create_task(projector.run(stop))
            while not follow and not stop.is_set() and not task.done():
                await asyncio.sleep(0.5)
                if not behind(targets, projector.reached):  # what the leader had at the start
                    stop.set()
            await task
        console.print(f"{projection}: rebuilt", highlight=False)

    with contextlib.suppress(KeyboardInterrupt):
        run(main)
