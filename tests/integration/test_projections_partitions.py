"""The projector over K=2 ledger partitions: one consumer and one stored position per
partition, and the projection still equals the state (I6) when transfers cross partitions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from benchmark.scenario import bootstrap
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.core.subjects import ledger_stream, partition_of
from eventsource.services.independent.ledger import IndependentLedger
from projections.postgres import PostgresDb
from projections.sqlite import SqliteDb
from projections.store import ProjectionDb
from tests.integration.live_bank import BANKS, LiveBank
from tests.integration.mixed_transfers import run_transfers
from tests.integration.projecting import projecting, until_caught_up
from tests.integration.projection_state import assert_projection_equals_state


@pytest.fixture
async def bank2(nats1: ClusterInfo) -> AsyncIterator[LiveBank]:
    """alpha in partition 0, beta and gamma in partition 1 (streams.yaml `partitions: 2`)."""
    partitions = await bootstrap(nats1.url, BANKS, funding="1000.00", partitions=2)
    nc = await connect(nats1.url)
    live = LiveBank(nats1, nc, partitions)
    await IndependentLedger(nc, partitions).open_account("gamma", "usd", "USD", "50.00")
    try:
        yield live
    finally:
        live.stop.set()
        if live.services:
            await asyncio.wait([task for _, task in live.services], timeout=10)
        await nc.close()


@pytest.fixture(params=["postgres", "sqlite"])
def make_store2(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ProjectionDb]:
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        return lambda: PostgresDb(server.dsn)
    return lambda: SqliteDb(tmp_path / "sqlite")


async def test_two_partitions_project_equal_to_the_state(bank2: LiveBank, make_store2):
    assert bank2.partitions == 2
    homes = {partition_of(p, 2) for p in bank2.participants}
    assert homes == {0, 1}, "the banks must live in both partitions"
    async with projecting(bank2, make_store2()) as projector:
        await run_transfers(bank2, count=30)  # while the projector follows both partitions
        await until_caught_up(bank2, projector)
        await assert_projection_equals_state(bank2, projector.store)
        positions = {p.stream: p.seq for p in await projector.store.positions()}
        assert set(positions) == {ledger_stream(0), ledger_stream(1)}
        assert all(seq > 0 for seq in positions.values())
        projected = await projector.store.state()
        assert {row[6] for row in projected.transfers.values()} == {"OK", "REJECTED"}
    report = await bank2.audit()
    assert report.ok, report.violations
