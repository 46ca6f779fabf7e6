"""A follower that restarts holds an old copy of the ledger for a while and still answers reads.
Every read that decides or reports must give what the stream leader holds all the same: the
audit, `accounts list`, `status` without a participant and the rows I6 expects. They run at
once after the restart, again and again, until the follower has caught up.

With the reads of before (an ephemeral consumer's "nothing pending" trusted) this failed in
every run: `accounts list` gave the opening balances and `status` did not find the transfer,
read from a replica holding 16 to 24 of some 11,000 events."""

from __future__ import annotations

import asyncio
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from benchmark.load import push
from benchmark.measure import settle
from benchmark.scenario import bootstrap, start_services, stop_services
from benchmark.workload import random_transfers, standard_banks
from eventsource.adapters.cluster import ClusterInfo, kill_node
from eventsource.adapters.cluster_info import NodeInfo
from eventsource.adapters.jetstream import connect
from eventsource.adapters.views import list_accounts
from eventsource.core.events import AccountSnapshot, TransferState
from eventsource.core.subjects import ledger_stream
from eventsource.services.audit import audit
from eventsource.services.audit_report import AuditReport
from eventsource.services.independent.ledger import IndependentLedger
from projections.compare import expected_rows
from projections.store import ProjectedState
from tests.integration.replicas import (
    accepts_clients,
    connect_first_to,
    leader_index,
    replica_last_seq,
    restart_under_load,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster3]
BANKS = standard_banks(3, 4)
NAMES = [b.participant for b in BANKS]
TRANSFERS = 3000  # about 11,000 ledger events: the restarted follower needs a second or two
CLIENTS = 9  # connections to the restarted node: audit, I6 rows, status, six `accounts list`
STATUS_SAMPLE = 3  # transfers whose status is read, in turn
READS_CAUGHT_UP = 2  # reads of each kind that must also pass once the follower has caught up
READS_WITHIN_S = 120.0
WATCH_EVERY_S = 0.05


@dataclass
class LeaderState:
    """What the stream leader holds once the transfers settled: every read must give this."""

    events: int
    last_seq: int
    accounts: list[AccountSnapshot]
    records: dict[tuple[str, str], TransferState]  # (submitter, id) -> the submitter's record
    rows: ProjectedState


async def test_reads_after_a_follower_restarts_give_what_the_leader_holds(
    nats3: ClusterInfo, tmp_path: Path
) -> None:
    partitions = await bootstrap(nats3.url, BANKS, funding="5000.00")
    nc = await connect(nats3.url)
    follower = (await leader_index(nc, nats3, ledger_stream(0)) + 1) % 3
    await nc.close()
    kill_node(nats3, follower)
    truth = await _transfers_while_down(nats3, follower, partitions, tmp_path)

    restarting = asyncio.create_task(restart_under_load(nats3, follower))
    node = nats3.nodes[follower]
    clients: list[nats.NATS] = []
    try:
        await accepts_clients(node)
        clients = [await connect_first_to(node, nats3) for _ in range(CLIENTS)]
        await _read_until_caught_up(clients, node, partitions, truth)
        await restarting
    finally:
        for client in clients:
            await client.close()
        await asyncio.wait([restarting])


async def _transfers_while_down(
    cluster: ClusterInfo, follower: int, partitions: int, tmp_path: Path
) -> LeaderState:
    """Push TRANSFERS through real services while `follower` is down; once all are final, note
    what the leader holds (single reads from the leader, and the reads under test taken while
    the two live replicas agree)."""
    live = ",".join(n.url for i, n in enumerate(cluster.nodes) if i != follower)
    procs = start_services(live, NAMES, 2, tmp_path / "logs")
    nc = await connect(live)
    try:
        ledger = IndependentLedger(nc, partitions)
        work = random_transfers(BANKS, TRANSFERS, seed=7, reject_share=0.05)
        assert (await push(ledger.submit, work, per_message=10)).acked == TRANSFERS
        measured = await settle(ledger, NAMES, {(w.debtor.participant, w.id) for w in work})
        assert measured.completed == TRANSFERS, measured.unfinished[:5]
        stop_services(procs)
        info = await nc.jetstream().stream_info(ledger_stream(0))  # answered by the leader
        accounts = [
            AccountSnapshot.of((await ledger.read_account(b.participant, a))[0])
            for b in BANKS
            for a in b.accounts
        ]
        records = {}
        for w in work[:STATUS_SAMPLE]:
            record = await ledger.record(w.debtor.participant, w.id)
            assert record is not None and record.state.final
            records[(w.debtor.participant, w.id)] = record.state
        rows = await expected_rows(nc, partitions)
        keys = sorted(f"{a.participant}.acct.{a.account}" for a in accounts)
        assert sorted(rows.accounts) == keys
        return LeaderState(info.state.messages, info.state.last_seq, accounts, records, rows)
    finally:
        stop_services(procs)
        await nc.close()


class Follower:
    """How far the restarted follower's own copy goes, watched through its monitoring port."""

    def __init__(self, node: NodeInfo, leader_last_seq: int) -> None:
        self.node = node
        self.target = leader_last_seq
        self.seen: int | None = None  # its last sequence, as last looked at
        self.caught_up = asyncio.Event()

    async def watch(self) -> None:
        while not self.caught_up.is_set():
            self.seen = await asyncio.to_thread(replica_last_seq, self.node, ledger_stream(0))
            if self.seen == self.target:
                self.caught_up.set()
            await asyncio.sleep(WATCH_EVERY_S)


async def _read_until_caught_up(
    clients: list[nats.NATS], node: NodeInfo, partitions: int, truth: LeaderState
) -> None:
    """Each kind of read on its own client(s), repeated from the moment the follower takes
    clients until READS_CAUGHT_UP reads of it began after the follower had caught up."""
    follower = Follower(node, truth.last_seq)
    watching = asyncio.create_task(follower.watch())
    auditor, rows_reader, status_reader, *listers = clients
    ledger = IndependentLedger(status_reader, partitions)
    ids = itertools.cycle(list(truth.records))
    try:
        async with asyncio.timeout(READS_WITHIN_S), asyncio.TaskGroup() as readers:
            counts = [
                readers.create_task(
                    _keep_reading(
                        "audit", lambda: audit(auditor, partitions, expect_final=True),
                        lambda r: _audit_wrong(r, truth), follower,
                    )
                ),
                readers.create_task(
                    _keep_reading(
                        "the rows I6 expects", lambda: expected_rows(rows_reader, partitions),
                        lambda rows: rows != truth.rows, follower,
                    )
                ),
                readers.create_task(
                    _keep_reading(
                        "status", lambda: _status(ledger, next(ids)),
                        lambda got: got[1] != truth.records[got[0]], follower,
                    )
                ),
                *(
                    readers.create_task(
                        _keep_reading(
                            "accounts list", functools.partial(list_accounts, c, partitions),
                            lambda listed: listed != truth.accounts, follower,
                        )
                    )
                    for c in listers
                ),
            ]  # fmt: skip
    finally:
        watching.cancel()
    assert all(task.result() >= READS_CAUGHT_UP for task in counts)


async def _keep_reading(what: str, read, wrong, follower: Follower) -> int:
    """Repeat `read`; fail at the first result that is `wrong`. Returns the number of reads."""
    count = after = 0
    while after < READS_CAUGHT_UP:
        caught_up = follower.caught_up.is_set()
        seen = follower.seen
        got = await read()
        count += 1
        problem = wrong(got)
        assert not problem, (
            f"{what} read {count}, begun with the restarted replica at {seen} of "
            f"{follower.target}: {problem if problem is not True else got}"
        )
        after += caught_up
    return count


def _audit_wrong(report: AuditReport, truth: LeaderState) -> tuple | None:
    got = (report.ok, report.events, report.transfers_acked, report.final, report.in_flight)
    if got == (True, truth.events, TRANSFERS, TRANSFERS, 0):
        return None
    return got, {i: v[:3] for i, v in report.violations.items() if v}


async def _status(ledger: IndependentLedger, record: tuple[str, str]):
    """`status ID` without a participant: the submitter is found, then its record is read."""
    views = await ledger.views(record[1])
    return record, None if views is None or views.submitter != record[0] else views.mine.state
