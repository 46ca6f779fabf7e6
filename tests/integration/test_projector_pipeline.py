"""The projector's pipeline with a real `natsbank projections run` process: while one batch's
transaction waits to commit, the next batch is fetched (and no third one); nothing is acked before
its commit; a kill -9 at that moment loses nothing once a new projector runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from eventsource.adapters.postgres import PgServer
from eventsource.core.limits import PROJECTOR_BATCHES_HELD
from eventsource.core.subjects import ledger_stream
from projections.consumers import caught_up, consumer_name
from projections.postgres import PostgresDb
from tests.integration.live_bank import LiveBank
from tests.integration.mixed_transfers import run_transfers
from tests.integration.polling import eventually
from tests.integration.projection_state import equals_state


@pytest.mark.parametrize("bank", ["jetstream"], indirect=True)
async def test_a_batch_is_acked_only_after_its_commit_and_a_kill_before_it_loses_nothing(
    bank: LiveBank, postgres: PgServer, tmp_path: Path
):
    streams = [ledger_stream(k) for k in range(bank.partitions)]
    command = [sys.executable, "-m", "eventsource.cli", "projections", "run"]
    command += ["--dsn", postgres.dsn, "--batch", "1"]
    env = os.environ | {"NATS_URL": bank.cluster.url}
    js = bank.nc.jetstream()
    with (tmp_path / "projector.log").open("wb") as log:
        first = subprocess.Popen(command, env=env, stderr=log)
        blocker = await asyncpg.connect(postgres.dsn)
        try:

            async def funding_applied() -> bool:
                try:
                    stored = await blocker.fetchval("SELECT count(*) FROM projection_position")
                except asyncpg.UndefinedTableError:  # not migrated yet
                    return False
                return stored > 0 and await caught_up(bank.nc, "postgres", streams)

            await eventually(funding_applied, "the projector applied the accounts' funding")
            # Hold the position rows: the projector's next transaction waits on them, uncommitted.
            held = blocker.transaction()
            await held.start()
            rows = await blocker.fetch("SELECT stream, seq FROM projection_position FOR UPDATE")
            position = {r["stream"]: r["seq"] for r in rows}
            await run_transfers(bank)
            info = None

            async def next_batch_fetched() -> bool:
                nonlocal info
                info = await js.consumer_info(streams[0], consumer_name("postgres", 0))
                return info.num_ack_pending >= PROJECTOR_BATCHES_HELD

            await eventually(next_batch_fetched, "a batch fetched while the one before commits")
            assert info is not None
            assert info.ack_floor.stream_seq <= position[streams[0]], "acked before its commit"
            assert info.num_ack_pending == PROJECTOR_BATCHES_HELD, "more batches held than allowed"
            assert info.delivered.stream_seq > position[streams[0]]
        finally:
            first.send_signal(signal.SIGKILL)  # fetched, not committed
            first.wait()
            await blocker.close()  # its transaction rolls back: the killed one's may go on, alone
        second = subprocess.Popen(command, env=env, stderr=log)
        try:
            await eventually(
                lambda: equals_state(bank, PostgresDb(postgres.dsn)), "the restart caught up"
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, "the projector does not stop cleanly on SIGTERM"
