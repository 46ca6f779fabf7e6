"""The banks of the integration tests (live_bank.BANKS) on the shared store (`--store shared`),
with participant services started by the test in its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

from nats.aio.client import Client

from benchmark.scenario import bootstrap
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.bootstrap import ServeOptions, participant_service
from eventsource.services.participant import ParticipantService
from eventsource.services.shared.ledger import SharedLedger
from eventsource.settings import Store
from tests.integration.live_bank import BANKS


class SharedBank(NamedTuple):
    nc: Client
    start: Callable[..., ParticipantService]  # (participant, fetch_batch=256): one instance


@contextlib.asynccontextmanager
async def shared_bank(cluster: ClusterInfo, funding: str = "1000.00") -> AsyncIterator[SharedBank]:
    """alpha (a1, a2), beta (b1, b2), gamma (g1, and usd in USD), all in the shared store."""
    await bootstrap(cluster.url, BANKS, funding=funding, store=Store.SHARED)
    nc = await connect(cluster.url)
    await SharedLedger(nc).open_account("gamma", "usd", "USD", "50.00")
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []

    def start(participant: str, fetch_batch: int = 256) -> ParticipantService:
        options = ServeOptions(fetch_batch=fetch_batch)
        service = participant_service(SharedLedger(nc), participant, options)
        tasks.append(asyncio.create_task(service.run(stop)))
        return service

    try:
        yield SharedBank(nc, start)
    finally:
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await nc.close()
