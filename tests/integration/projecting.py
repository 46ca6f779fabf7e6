"""A projector run by a test: in the test's event loop on a store it opens, or as the
`natsbank projections` command line that names the same store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from projections.consumers import caught_up
from projections.postgres import PostgresDb
from projections.projector import Projector
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


async def deliver_everything_again(projector: Projector) -> None:
    """Every followed stream's state events once more, through a new consumer, into the running
    projector: not one of them may be applied again."""
    js = projector.nc.jetstream()
    for k, stream in enumerate(projector.source.streams):
        config = ConsumerConfig(
            durable_name="again",
            filter_subject=projector.source.filter(k),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        )
        await js.add_consumer(stream, config)
        sub = await js.pull_subscribe_bind("again", stream=stream)
        msgs = await sub.fetch(10_000, timeout=2.0)
        applied = projector.stats.applied
        await projector.apply_batch(stream, msgs, asyncio.Event())
        assert projector.stats.applied == applied
        await sub.unsubscribe()


ROUTES = [("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha")]  # a1->b1, b2->g1, g1->a2


def of_beta(rows: dict[str, tuple]) -> dict[str, tuple]:
    """The rows of beta's own keys (what a projection of beta alone holds)."""
    return {key: row for key, row in rows.items() if key.startswith("beta.")}
