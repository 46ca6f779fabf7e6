"""Fixtures of the integration tests: a live bank on a real nats-server (see live_bank.py) and a
real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.postgres import EmbeddedPostgres, PgServer
from projections.postgres import PostgresDb
from projections.sqlite import SqliteDb
from projections.store import ProjectionDb
from tests.integration.archive_ledger import provision
from tests.integration.authorized import AUTH
from tests.integration.live_bank import MODES, LiveBank, live_bank


@pytest.fixture(params=MODES)
async def bank(nats1: ClusterInfo, request: pytest.FixtureRequest) -> AsyncIterator[LiveBank]:
    """Three participants (alpha, beta, gamma) with funded EUR accounts on one node, no services
    started yet (tests start them, so they can also test a receiver that is down); once per
    transport mode."""
    async with live_bank(nats1, mode=request.param) as live:
        yield live


@pytest.fixture
async def nc(nats1: ClusterInfo) -> AsyncIterator[Client]:
    """A connection to a node with natsbank's ledger partition 0 provisioned, still empty (the
    archive tests fill it themselves)."""
    client = await connect(nats1.url)
    await provision(client)
    yield client
    await client.close()


@pytest.fixture
def authorized(tmp_path: Path) -> Iterator[ClusterInfo]:
    """A fresh single node with authorization on (the account-per-bank model) for the banks of
    tests/integration/authorized.py, stopped after the test."""
    with LocalCluster(tmp_path / "auth", nodes=1, auth=AUTH) as info:
        yield info


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PgServer]:
    """A real PostgreSQL in tmp_path, stopped after the test."""
    with EmbeddedPostgres(tmp_path / "pg") as server:
        yield server


@pytest.fixture(params=["postgres", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], ProjectionDb]:
    """A factory of stores on one projection database (the projection tests): PostgreSQL or a
    SQLite directory."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        return lambda: PostgresDb(server.dsn)
    return lambda: SqliteDb(tmp_path / "sqlite")
