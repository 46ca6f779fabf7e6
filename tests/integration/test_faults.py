"""Real processes killed with SIGKILL under load; afterwards the audit is clean and every
ACKed transfer is final on both sides."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from benchmark.load import push
from benchmark.measure import settle
from benchmark.scenario import bootstrap, start_services, stop_services
from benchmark.workload import random_transfers, standard_banks
from eventsource.adapters.cluster import ClusterInfo, kill_node, load_cluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.subjects import DEAD_LETTER_STREAM, ledger_stream
from eventsource.services.audit import audit
from eventsource.services.independent.ledger import IndependentLedger
from tests.integration.replicas import leader_index, restart_under_load

pytestmark = pytest.mark.slow
BANKS = standard_banks(3, 4)
NAMES = [b.participant for b in BANKS]
SERVE_ARGS = {"jetstream": (), "core": ("--mode", "core", "--resend-after", "1")}
modes = pytest.mark.parametrize("mode", sorted(SERVE_ARGS))


async def run_with_fault(
    cluster: ClusterInfo, tmp_path: Path, fault, *, count: int, rate: float, mode: str
) -> None:
    partitions = await bootstrap(cluster.url, BANKS, funding="5000.00")
    procs = start_services(cluster.url, NAMES, 2, tmp_path / "logs", serve_args=SERVE_ARGS[mode])
    try:
        nc = await connect(cluster.url)
        work = random_transfers(BANKS, count, seed=11, reject_share=0.05)
        ledger = IndependentLedger(nc, partitions)
        pushing = asyncio.create_task(push(ledger.submit, work, rate=rate, per_message=10))
        await asyncio.sleep(count / rate / 3)
        procs = await fault(procs)
        report = await pushing
        assert report.acked == count
        measured = await settle(ledger, NAMES, {(w.debtor.participant, w.id) for w in work})
        assert measured.unfinished == [], [
            (m.headers or {}).get("Natsbank-Detail")
            async for m in read_messages(nc, DEAD_LETTER_STREAM)
        ]
        assert measured.completed == count
        checked = await audit(nc, partitions, expect_final=True)
        assert checked.ok, dict(checked.violations)
        assert checked.transfers_acked == count
        await nc.close()
    finally:
        stop_services(procs)


@modes
async def test_kill_9_of_a_service_instance_under_load_then_restart(nats1, tmp_path, mode):
    async def kill_one_instance(procs):
        os.kill(procs[0].pid, signal.SIGKILL)  # between any two of its writes
        procs[0].wait()
        await asyncio.sleep(1.0)
        again = start_services(nats1.url, NAMES, 1, tmp_path / "logs2", serve_args=SERVE_ARGS[mode])
        return [procs[1], *again]

    await run_with_fault(nats1, tmp_path, kill_one_instance, count=3000, rate=600, mode=mode)


@pytest.mark.cluster3
@modes
async def test_kill_9_of_the_ledger_leader_node_under_load(nats3, tmp_path, mode):
    async def kill_leader(procs):
        nc = await connect(nats3.url)
        try:
            info = await transient_retry(
                lambda: nc.jetstream().stream_info(ledger_stream(0)), what="the ledger's info"
            )
            assert info.config.num_replicas == 3  # streams init fitted R3 to the 3-node cluster
            index = await leader_index(nc, nats3, ledger_stream(0))
        finally:
            await nc.close()
        kill_node(load_cluster(Path(nats3.state_dir)) or nats3, index)
        await asyncio.sleep(3.0)
        await restart_under_load(nats3, index)
        return procs

    await run_with_fault(nats3, tmp_path, kill_leader, count=2000, rate=300, mode=mode)
