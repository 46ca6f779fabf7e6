"""A projector run by a test: in the test's event loop on a store it opens, or as the
`natsbank projections` command line that names the same store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from projections.postgres import PostgresDb
from projections.projector import Projector, caught_up
from projections.source import LedgerSource
from projections.sqlite import SqliteDb
from projections.store import ProjectionDb
from tests.integration.live_bank import LiveBank
from tests.integration.polling import eventually


def cli_args(store: ProjectionDb) -> list[str]:
    if isinstance(store, PostgresDb):
        return ["--dsn", store.dsn]
    assert isinstance(store, SqliteDb)
    return ["--sqlite", str(store.directory)]


def name_of(store: ProjectionDb) -> str:
    return "postgres" if isinstance(store, PostgresDb) else "sqlite"


@contextlib.asynccontextmanager
async def projecting(bank: LiveBank, store: ProjectionDb, **options) -> AsyncIterator[Projector]:
    """A projector running in the test's loop until the block ends; the store is opened here."""
    await store.open()
    source = options.pop("source", None) or LedgerSource(
        bank.partitions, options.pop("participant", None)
    )
    projector = Projector(
        bank.nc, store, source, name=options.pop("name", name_of(store)), **options
    )
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await task
        await store.close()


async def until_caught_up(bank: LiveBank, projector: Projector) -> None:
    streams = projector.source.streams

    async def done() -> bool:
        bound = len(projector.bound) == len(streams)
        return bound and await caught_up(bank.nc, projector.name, streams)

    await eventually(done, f"{projector.name} caught up")
