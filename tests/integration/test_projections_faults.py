"""The projector under faults, and its commands: PostgreSQL going away while the projector runs,
a standby taking over, `projections status` and `projections rebuild` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventsource.adapters import postgres as pg
from eventsource.adapters.postgres import PgServer
from eventsource.core.subjects import ledger_stream
from projections.consumers import consumer_name
from projections.postgres import PostgresDb
from projections.sqlite import SqliteDb
from tests.integration.live_bank import LiveBank
from tests.integration.mixed_transfers import run_transfers
from tests.integration.polling import eventually
from tests.integration.projecting import cli_args, projecting, until_caught_up
from tests.integration.projection_state import assert_projection_equals_state, equals_state


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PgServer]:
    """A real PostgreSQL in tmp_path that the test may stop and start again."""
    data_dir = tmp_path / "pg"
    started = pg.start(data_dir)
    try:
        yield started
    finally:
        pg.stop(data_dir)


def natsbank(bank: LiveBank, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"NATS_URL": bank.cluster.url}
    command = [sys.executable, "-m", "eventsource.cli", "projections", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_postgres_down_while_projecting_loses_nothing(bank: LiveBank, server: PgServer):
    async with projecting(bank, PostgresDb(server.dsn)) as projector:
        await until_caught_up(bank, projector)
        pg.stop(Path(server.data_dir))
        await run_transfers(bank)
        assert pg.start(Path(server.data_dir)).dsn == server.dsn  # same port again
        await until_caught_up(bank, projector)
        await assert_projection_equals_state(bank, projector.store)
        assert projector.stats.errors, "the projector never noticed the database was down"


async def test_a_standby_takes_over_when_the_active_projector_stops(
    bank: LiveBank, server: PgServer
):
    await run_transfers(bank, count=6)
    running_first = projecting(bank, PostgresDb(server.dsn))
    active = await running_first.__aenter__()
    await until_caught_up(bank, active)
    async with projecting(bank, PostgresDb(server.dsn)) as standby:
        assert not standby.leading.is_set()
        await running_first.__aexit__(None, None, None)
        await run_transfers(bank, count=6)  # the active one is gone: the standby must apply these

        async def leading() -> bool:
            return standby.leading.is_set()

        await eventually(leading, "the standby took over")
        await until_caught_up(bank, standby)
        await assert_projection_equals_state(bank, standby.store)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_status_then_rebuild_from_the_command_line(
    bank: LiveBank, backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    if backend == "postgres":
        store = PostgresDb(request.getfixturevalue("server").dsn)
    else:
        store = SqliteDb(tmp_path / "sqlite")
    await run_transfers(bank)
    async with projecting(bank, store) as projector:
        await until_caught_up(bank, projector)
        busy = natsbank(bank, "rebuild", *cli_args(store))
        assert busy.returncode == 1, busy.stderr
        assert "running" in busy.stderr
        before = await store.state()
    shown = natsbank(bank, "status", "--json", *cli_args(store))
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    assert row["pending"] == 0 and row["position"] > 0
    assert row["lag_seconds"] is not None and row["lag_seconds"] >= 0

    rebuilt = natsbank(bank, "rebuild", *cli_args(store))
    assert rebuilt.returncode == 0, rebuilt.stderr
    await store.open()
    try:
        assert await store.state() == before
        await assert_projection_equals_state(bank, store)
    finally:
        await store.close()


async def test_deliveries_lost_in_flight_are_not_skipped(bank: LiveBank, tmp_path: Path):
    """Another subscriber takes deliveries of the projector's consumer and never acks them (as a
    lost fetch reply would): the projector sees the hole in the delivery sequence and rewinds to
    its database position instead of applying past it."""
    store = SqliteDb(tmp_path / "sqlite")
    async with projecting(bank, store) as projector:
        await until_caught_up(bank, projector)
        js = bank.nc.jetstream()
        thief = await js.pull_subscribe_bind(consumer_name("sqlite", 0), stream=ledger_stream(0))
        stolen = asyncio.create_task(thief.fetch(20, timeout=10.0))
        await asyncio.sleep(0.2)  # the thief's pull request waits at the server first
        await run_transfers(bank)
        taken = await stolen
        await thief.unsubscribe()
        assert taken, "the thief got nothing: the test proved nothing"
        await eventually(lambda: equals_state(bank, SqliteDb(tmp_path / "sqlite")), "equal")
        assert projector.stats.rewinds >= 1
