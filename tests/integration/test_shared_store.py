"""The shared store (`--store shared`) against real nats-server processes: one atomic step per
transfer, the same causes as the independent store, duplicates applied once, a hot account
under two instances, kill -9 of a service and of a NATS node; the shared audit after each."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest

from benchmark.measure import wait_quiescent
from benchmark.scenario import bootstrap, drive, start_services, stop_services
from benchmark.workload import standard_banks
from eventsource.adapters.cluster import ClusterInfo, kill_node, load_cluster
from eventsource.adapters.jetstream import connect
from eventsource.adapters.retry import transient_retry
from eventsource.core.errors import RejectionCause
from eventsource.core.events import encoder
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Outcome
from eventsource.core.shared.layout import SHARED_STREAM, submit_subject
from eventsource.services.shared.audit import audit_shared
from eventsource.services.shared.client import submit_shared, wait_decided
from eventsource.services.shared.ledger import SharedLedger
from eventsource.settings import Store
from tests.integration.live_bank import BANKS, transfer
from tests.integration.replicas import leader_index, restart_under_load
from tests.integration.shared_bank import shared_bank

NAMES = [b.participant for b in BANKS]


async def balance(nc, participant: str, account: str) -> int:
    return (await SharedLedger(nc).read_account(participant, account))[0].balance


async def clean_audit(nc, participants=NAMES):
    consumers = [c for p in participants for c in SharedLedger(nc).consumers(p)]
    assert await wait_quiescent(nc, consumers, timeout=60)
    report = await audit_shared(nc, expect_final=True)
    assert report.ok, dict(report.violations)
    return report


async def test_ok_and_rejected_transfers_with_their_causes(nats1):
    async with shared_bank(nats1) as (nc, start):
        for p in NAMES:
            start(p)
        cases = {
            "ok": (transfer("ok", "alpha/a1", "beta/b1", "10.50"), None),
            "poor": (transfer("poor", "alpha/a1", "beta/b1", "5000.00"), "INSUFFICIENT_FUNDS"),
            "nobody": (transfer("nobody", "alpha/a1", "beta/zz"), "UNKNOWN_ACCOUNT"),
            "dollars": (transfer("dollars", "alpha/a1", "gamma/usd"), "CURRENCY_MISMATCH"),
            "tiny": (transfer("tiny", "alpha/a1", "beta/b1", "0.001"), "INVALID_AMOUNT"),
            "stranger": (transfer("stranger", "alpha/a1", "omega/o1"), "UNKNOWN_PARTICIPANT"),
        }
        ack = await submit_shared(nc, "alpha", [r for r, _ in cases.values()])
        assert ack.sequence > 0  # the ACK: stored in the shared stream's inbox
        decided = await wait_decided(nc, "alpha", list(cases))
        for tid, (_, cause) in cases.items():
            state = decided[tid]
            assert state.outcome is (Outcome.OK if cause is None else Outcome.REJECTED), tid
            assert state.cause == (cause and RejectionCause(cause)), tid
        assert await balance(nc, "alpha", "a1") == 1000_00 - 10_50
        assert await balance(nc, "beta", "b1") == 1000_00 + 10_50
        report = await clean_audit(nc)
        assert report.transfers_acked == report.final == len(cases)
        assert report.outcomes == {"OK": 1, "REJECTED": 5}


async def test_a_duplicate_submission_is_answered_from_the_record_and_applied_once(nats1):
    async with shared_bank(nats1) as (nc, start):
        once = transfer("dup", "beta/b1", "alpha/a2", "100.00")
        await submit_shared(nc, "beta", [once])
        # The same transfer again under other message ids (JetStream's dedup window is only a
        # backstop): with a companion, and raw with a fresh Nats-Msg-Id, before and after.
        await submit_shared(nc, "beta", [once, transfer("other", "beta/b1", "alpha/a2")])
        raw = encoder.encode(SubmitTransfers(transfers=[once]))
        for _ in range(2):
            await nc.jetstream().publish(
                submit_subject("beta", uuid.uuid4().hex[:8]),
                raw,
                headers={"Nats-Msg-Id": uuid.uuid4().hex},
            )
        start("beta")
        start("beta")  # two instances may take the copies at the same time
        decided = await wait_decided(nc, "beta", ["dup", "other"])
        assert decided["dup"].outcome is Outcome.OK
        await clean_audit(nc, ["beta"])
        await submit_shared(nc, "beta", [once])  # and once more, after the fact
        await clean_audit(nc, ["beta"])
        assert await balance(nc, "beta", "b1") == 1000_00 - 100_00 - 10_00
        assert await balance(nc, "alpha", "a2") == 1000_00 + 100_00 + 10_00


async def test_a_hot_account_under_two_instances_never_overdraws(nats1):
    async with shared_bank(nats1, funding="100.00") as (nc, start):
        submissions = []
        for i in range(40):  # 40 x 7.00 against 100.00 on alpha/a1: 14 fit, and what is paid in
            out = transfer(f"hot{i}", "alpha/a1", "beta/b1", "7.00")
            # meanwhile beta pays into the same hot account: cross-participant contention
            paid = transfer(f"in{i}", "beta/b2", "alpha/a1", "0.50")
            submissions += [
                submit_shared(nc, "alpha", [out]),
                submit_shared(nc, "beta", [paid]),
            ]
        await asyncio.gather(*submissions)
        # small fetches, so that both alpha instances hold work on the same account at once
        services = [start("alpha", 4), start("alpha", 4), start("beta", 4)]
        hot = await wait_decided(nc, "alpha", [f"hot{i}" for i in range(40)])
        paid_in = await wait_decided(nc, "beta", [f"in{i}" for i in range(40)])
        assert len(hot) == len(paid_in) == 40
        report = await clean_audit(nc)
        ok = sum(s.outcome is Outcome.OK for s in hot.values())
        causes = {s.cause for s in hot.values() if s.outcome is Outcome.REJECTED}
        assert causes <= {RejectionCause.INSUFFICIENT_FUNDS}
        assert await balance(nc, "alpha", "a1") == 100_00 - ok * 7_00 + 40 * 50 >= 0
        assert ok >= 14  # money paid in may let more through, never an overdraft
        assert report.funded == report.balances
        assert sum(s.stats.items for s in services) >= 80  # a redelivery is decided again


FAULT_BANKS = standard_banks(3, 4)
SERVE_SHARED = ("--store", "shared")


async def run_with_fault(cluster: ClusterInfo, tmp_path: Path, fault, *, count: int, rate: float):
    """Real `serve --store shared` processes under a paced load; `fault(procs)` runs 2 s in.
    Afterwards every ACKed transfer has its one record and the shared audit is clean."""
    names = [b.participant for b in FAULT_BANKS]
    await bootstrap(cluster.url, FAULT_BANKS, funding="5000.00", store=Store.SHARED)
    procs = start_services(cluster.url, names, 2, tmp_path / "logs", serve_args=SERVE_SHARED)
    try:

        async def disturb() -> None:
            await asyncio.sleep(2.0)
            await fault(procs)

        disturbing = asyncio.create_task(disturb())
        result = await drive(
            cluster.url,
            FAULT_BANKS,
            count,
            store=Store.SHARED,
            seed=5,
            rate=rate,
            per_message=10,
            settle_timeout=120,
        )
        await disturbing
    finally:
        stop_services(procs)
    assert result.acked == count
    assert result.measurement.unfinished == []
    assert result.audit.ok, dict(result.audit.violations)
    assert result.audit.transfers_acked == result.audit.final == count


@pytest.mark.slow
async def test_kill_9_of_a_shared_store_service_under_load(nats1, tmp_path):
    async def kill_one_then_restart(procs) -> None:
        os.kill(procs[0].pid, signal.SIGKILL)  # between any two of its writes
        procs[0].wait()
        await asyncio.sleep(1.0)
        names = [b.participant for b in FAULT_BANKS]
        procs[0] = start_services(nats1.url, names, 1, tmp_path / "l2", serve_args=SERVE_SHARED)[0]

    await run_with_fault(nats1, tmp_path, kill_one_then_restart, count=3000, rate=600)


@pytest.mark.slow
@pytest.mark.cluster3
async def test_kill_9_of_the_shared_stream_leader_node_under_load(nats3, tmp_path):
    async def kill_leader(procs) -> None:
        nc = await connect(nats3.url)
        try:
            info = await transient_retry(
                lambda: nc.jetstream().stream_info(SHARED_STREAM), what="the shared stream's info"
            )
            assert info.config.num_replicas == 3  # R3, like the ledger
            index = await leader_index(nc, nats3, SHARED_STREAM)
        finally:
            await nc.close()
        kill_node(load_cluster(Path(nats3.state_dir)) or nats3, index)
        await asyncio.sleep(3.0)
        await restart_under_load(nats3, index)

    await run_with_fault(nats3, tmp_path, kill_leader, count=2000, rate=300)
