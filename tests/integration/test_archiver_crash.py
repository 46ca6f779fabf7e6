"""kill -9 of the archiving process at every point of a run loses nothing and duplicates
nothing (issue 12): a real `natsbank archive run` kills itself with SIGKILL at a named point
(`--crash-at`), another run finishes the work, and the audit holds across live and archive."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from eventsource.adapters.archive_meta import meta_bucket, read_head
from eventsource.adapters.archive_store import verify_chain
from eventsource.adapters.topology import Topology
from eventsource.core.model import Outcome
from eventsource.core.subjects import ledger_stream
from eventsource.services.archiver import CRASH_POINTS
from tests.integration.archiving import AGE_S, HISTORY, is_live, new_id
from tests.integration.live_bank import LiveBank, live_bank, transfer

pytestmark = pytest.mark.timeout(240)
# Final transfers are read from the archive once archived: the wait returns at once when all
# are there, and gives a loaded machine this long.
FINAL_WITHIN_S = 60.0


def archive_run(bank: LiveBank, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"NATS_URL": bank.cluster.url}
    command = [sys.executable, "-m", "eventsource.cli", "archive", "run", "--once", "--lease", "3"]
    command += args
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("point", CRASH_POINTS)
async def test_an_archiver_killed_at_any_point_loses_and_duplicates_nothing(nats1, point):
    await crash_and_finish(nats1, point)


@pytest.mark.parametrize("point", ["reading", "advanced"])
async def test_a_paced_archiver_killed_mid_round_loses_and_duplicates_nothing(nats1, point):
    """A paced round (`--pace`) fixes its cut at its start and reads at a bounded rate, renewing
    its lease as it reads: killed in the middle, the next paced round finishes the work."""
    await crash_and_finish(nats1, point, "--pace", "1", "--every", "3")


async def crash_and_finish(nats1, point: str, *options: str) -> None:
    async with live_bank(nats1, topology=Topology(history=HISTORY)) as bank:
        bank.start_all()
        ids = [new_id() for _ in range(30)]
        await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "1.00") for i in ids[:20]))
        await bank.submit(*(transfer(i, "beta/b1", "gamma/g1", "2.00") for i in ids[20:]))
        assert len(await bank.wait("alpha", ids[:20])) == 20
        assert len(await bank.wait("beta", ids[20:])) == 10
        await asyncio.sleep(AGE_S)

        crashed = archive_run(bank, "--crash-at", point, *options)
        assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
        finished = archive_run(bank, *options)
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert "Traceback" not in finished.stderr

        kv = await meta_bucket(bank.nc)
        for k in range(bank.partitions):
            head, _ = await read_head(kv, ledger_stream(k))
            assert head.period >= 1, f"partition {k} archived nothing after the crash at {point}"
            manifests = await verify_chain(bank.nc, k, head.period)
            assert manifests[-1].chain == head.chain and manifests[-1].end_seq == head.end_seq
        assert not await is_live(bank, "alpha", ids[0])
        found = await bank.wait("alpha", ids[:20], timeout=FINAL_WITHIN_S)
        found |= await bank.wait("beta", ids[20:], timeout=FINAL_WITHIN_S)
        assert found.keys() == set(ids), f"not final in time: {sorted(set(ids) - found.keys())}"
        assert {i: s.outcome for i, s in found.items()} == dict.fromkeys(ids, Outcome.OK)
        report = await bank.audit()
        assert report.ok, report.violations
        balances = {(a.participant, a.account): a.balance for a in await bank.ledger.accounts()}
        # Each funded 1000.00: nothing applied twice, nothing lost, whatever was archived.
        assert balances[("alpha", "a1")] == "980.00"
        assert balances[("beta", "b1")] == "1000.00"
        assert balances[("gamma", "g1")] == "1020.00"
