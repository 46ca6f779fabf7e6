"""kill -9 of real `natsbank serve` processes while transfers are being given up: first the
submitter's, while its deadlines pass one by one; then the receiver's, while it records the
CANCELs. Afterwards every transfer is final with the same outcome on both sides (CANCELLED, or
OK where the result beat a later deadline), the money matches, and the audit is clean."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from benchmark.scenario import start_services, stop_services
from eventsource.core.model import Outcome
from eventsource.core.subjects import incoming_key, outgoing_key
from tests.integration.ledger_reads import UNTOUCHED, account, record
from tests.integration.live_bank import MODES, live_bank, transfer
from tests.integration.polling import until

pytestmark = pytest.mark.slow
COUNT = 60
SERVE_ARGS = {
    "jetstream": ("--fetch-batch", "5"),
    "core": ("--mode", "core", "--resend-after", "0.5"),
}


def kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("mode", MODES)
async def test_kill_9_of_either_side_during_the_cancel(nats1, tmp_path: Path, mode: str):
    ids = [f"t{i:03}" for i in range(COUNT)]
    procs: list[subprocess.Popen] = []

    def serve(participant: str, run: str) -> subprocess.Popen:
        (proc,) = start_services(
            nats1.url, [participant], 1, tmp_path / run, serve_args=SERVE_ARGS[mode]
        )
        procs.append(proc)
        return proc

    async def cancelled_at(owner: str, key: str) -> bool:
        state = await record(bank, owner, key)
        return state is not None and state.final and state.outcome is Outcome.CANCELLED

    async with live_bank(nats1, mode=mode) as bank:
        try:
            submitter = serve("alpha", "n1")
            # deadlines 1.0 s to 3.4 s after admission: the kill lands while they pass
            await bank.submit(
                *(
                    transfer(tid, "alpha/a1", "beta/b1", "1.00", deadline_ms=1000 + 40 * i)
                    for i, tid in enumerate(ids)
                )
            )
            await until(lambda: cancelled_at("alpha", outgoing_key("alpha", ids[0])), "a give-up")
            kill_9(submitter)

            receiver = serve("beta", "p1")
            serve("alpha", "n2")  # back: gives up on the rest, (core mode) resends the CANCELs
            first = incoming_key("beta", "alpha", ids[0])
            await until(lambda: cancelled_at("beta", first), "p records a CANCEL", timeout=60)
            kill_9(receiver)
            serve("beta", "p2")

            report = await bank.audit()
            assert report.ok, dict(report.violations)
            outcomes = dict(report.outcomes)
            # The deadlines that passed while n was down are given up; for the later ones the
            # result may come first: each transfer is final and agreed either way (I4).
            cancelled, ok = outcomes.get("CANCELLED", 0), outcomes.get("OK", 0)
            assert cancelled >= 1 and cancelled + ok == COUNT, outcomes
            for tid in ids:
                mine = await record(bank, "alpha", outgoing_key("alpha", tid))
                theirs = await record(bank, "beta", incoming_key("beta", "alpha", tid))
                assert mine.final and theirs.final and mine.outcome is theirs.outcome, tid
            a1, b1 = UNTOUCHED[0] - 100 * ok, UNTOUCHED[0] + 100 * ok
            assert await account(bank, "alpha", "a1") == (a1, 0, 0)
            assert await account(bank, "beta", "b1") == (b1, 0, 0)
        finally:
            stop_services(procs)
            await asyncio.sleep(0)
