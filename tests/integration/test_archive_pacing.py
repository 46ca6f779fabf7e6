"""A paced round (issue 12, the soak's p99): the archiver spreads a round's work over small
runs read at a bounded rate, and still archives everything old enough and ends. On a real
server, through `run_archiver` as `natsbank archive run --once --pace` calls it; the runs are
made small here (the pacing rule is a parameter) so that one round takes several."""

from __future__ import annotations

import asyncio

import pytest

from eventsource.adapters.archive_meta import meta_bucket, read_head
from eventsource.adapters.archive_store import verify_chain
from eventsource.adapters.archive_stream import stream_bounds
from eventsource.adapters.topology import Topology
from eventsource.core.archive_pace import RunPace
from eventsource.core.model import Outcome
from eventsource.core.subjects import ledger_stream
from eventsource.services.archive_rounds import run_archiver
from eventsource.services.archiver import RunReport
from tests.integration.archiving import AGE_S, HISTORY, is_live, new_id
from tests.integration.live_bank import live_bank, transfer

pytestmark = pytest.mark.timeout(240)

RUNS_AT_LEAST = 3
RATE = 100.0  # messages/s: each run's read waits, and outlasts a third of its lease (renewed)
# Final transfers are read from the archive once archived: the wait returns at once when all
# are there, and gives a loaded machine this long.
FINAL_WITHIN_S = 60.0


async def test_a_paced_round_archives_everything_old_enough_in_small_runs_and_ends(nats1):
    async with live_bank(nats1, topology=Topology(history=HISTORY)) as bank:
        bank.start_all()
        ids = [new_id() for _ in range(40)]
        await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "1.00") for i in ids[:30]))
        await bank.submit(*(transfer(i, "beta/b1", "gamma/g1", "2.00") for i in ids[30:]))
        assert len(await bank.wait("alpha", ids[:30])) == 30
        assert len(await bank.wait("beta", ids[30:])) == 10
        await bank.quiet()
        await asyncio.sleep(AGE_S)  # every message so far is older than the horizon

        _, last_seq = await stream_bounds(bank.nc, ledger_stream(0))
        size = last_seq // RUNS_AT_LEAST  # at least that many runs for what is old enough
        asked: list[tuple[int, float]] = []

        def pacing(backlog: int, seconds_left: float) -> RunPace:
            asked.append((backlog, seconds_left))
            return RunPace(size, RATE)

        reports: list[RunReport] = []
        stop = asyncio.Event()
        round_ = run_archiver(
            bank.nc, bank.partitions, bank.history, stop, every=60.0, once=True, pace=1.0,
            lease_s=2.0, on_run=reports.append, pacing=pacing,
        )  # fmt: skip
        await asyncio.wait_for(round_, 180)  # a paced round ends on its own

        periods = [r for r in reports if r.period is not None]
        assert len(periods) >= RUNS_AT_LEAST, [r.describe() for r in reports]
        assert all(r.end_seq - r.first_seq <= size for r in periods)
        assert [r.first_seq for r in periods[1:]] == [r.end_seq for r in periods[:-1]]
        assert not periods[-1].more  # the round went as far as its cut
        assert asked[0][0] >= last_seq - 1  # the round's whole backlog, measured at its start
        backlogs = [b for b, _ in asked]
        assert backlogs == sorted(backlogs, reverse=True)  # what is left shrinks run by run

        kv = await meta_bucket(bank.nc)
        head, _ = await read_head(kv, ledger_stream(0))
        assert head.period == len(periods) and head.end_seq == periods[-1].end_seq
        manifests = await verify_chain(bank.nc, 0, head.period)
        assert manifests[-1].chain == head.chain
        for transfer_id in ids:
            submitter = "alpha" if transfer_id in ids[:30] else "beta"
            assert not await is_live(bank, submitter, transfer_id), transfer_id
        found = await bank.wait("alpha", ids[:30], timeout=FINAL_WITHIN_S)
        found |= await bank.wait("beta", ids[30:], timeout=FINAL_WITHIN_S)
        assert found.keys() == set(ids), f"not final in time: {sorted(set(ids) - found.keys())}"
        assert {i: s.outcome for i, s in found.items()} == dict.fromkeys(ids, Outcome.OK)
        report = await bank.audit()
        assert report.ok, report.violations
        balances = {(a.participant, a.account): a.balance for a in await bank.ledger.accounts()}
        assert balances[("alpha", "a1")] == "970.00"
        assert balances[("beta", "b1")] == "1010.00"
        assert balances[("gamma", "g1")] == "1020.00"
