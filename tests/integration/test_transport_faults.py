"""Both transport modes under the same seeded fault plan: protocol messages lost, duplicated
and delayed at the transport boundary, and a receiver that is down for a while. Every transfer
still ends final once on both sides and the audit is clean (I1-I5, I7)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from eventsource.adapters.topology import quick_redelivery
from eventsource.core.faults import NO_FAULTS, Fate, FaultPlan
from eventsource.core.messages import Kind
from eventsource.core.model import Outcome
from eventsource.core.subjects import core_subject
from tests.integration.ledger_reads import dead_letters
from tests.integration.live_bank import MODES, live_bank, transfer
from tests.integration.polling import until

NOISY = FaultPlan(drop=0.2, duplicate=0.1, delay=0.1, max_delay=0.5, seed=3)


@pytest.mark.parametrize("mode", MODES)
async def test_lost_duplicated_and_delayed_messages_still_end_final_once(nats1, mode):
    async with live_bank(
        nats1, "100.00", mode=mode, faults=NOISY, topology=quick_redelivery(1.0)
    ) as bank:
        bank.start_all()
        # 150 transfers of 1.00 from a 100.00 account: exactly 100 pass, whatever the noise.
        requests = [
            transfer(f"n-{i}", "alpha/a1", f"beta/b{1 + i % 2}", "1.00") for i in range(150)
        ]
        for request in requests:  # one by one, so that there are many protocol messages
            await bank.submit(request)
            await asyncio.sleep(0.01)
        # Every kind of fault has struck; then the network heals, so that how long the last
        # resends take is not a matter of luck (a message can be lost any number of times).
        await until_each_fault_struck(bank)
        for service, _ in bank.services:
            service.faults.plan = NO_FAULTS
        final = await bank.wait("alpha", [r.id for r in requests], timeout=120)
        assert len(final) == 150
        assert [s.outcome for s in final.values()].count(Outcome.OK) == 100
        report = await bank.audit(patience=120)
        assert report.ok, report.violations
        assert report.transfers_acked == 150


async def until_each_fault_struck(bank, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        faults = {fate: sum(s.faults.counts[fate] for s, _ in bank.services) for fate in Fate}
        if faults[Fate.DROP] and faults[Fate.DUPLICATE] and faults[Fate.DELAY]:
            return
        assert loop.time() < deadline, f"not every fault struck: {faults}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode", MODES)
async def test_a_receiver_that_is_down_for_a_while_gets_everything_when_back(nats1, mode):
    async with live_bank(nats1, mode=mode, topology=quick_redelivery(1.0)) as bank:
        bank.start("alpha")
        ids = [f"d-{i}" for i in range(30)]
        await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "2.00") for i in ids))
        await asyncio.sleep(3.0)  # alpha reserved the funds; its postings go nowhere meanwhile
        assert await bank.wait("alpha", ids, timeout=0.5) == {}
        bank.start("beta")
        final = await bank.wait("alpha", ids, timeout=60)
        assert {s.outcome for s in final.values()} == {Outcome.OK}
        report = await bank.audit()
        assert report.ok, report.violations


async def test_a_poison_core_message_is_dead_lettered_and_the_service_carries_on(nats1):
    async with live_bank(nats1, mode="core") as bank:
        bank.start_all()
        for service, _ in bank.services:
            await asyncio.wait_for(service.carrier.listening.wait(), 60)
        await bank.nc.publish(core_subject("alpha", Kind.RESULT, "beta"), b"{not json")
        wrong = msgspec.json.encode({"type": "confirm", "sender": "beta", "confirms": []})
        await bank.nc.publish(core_subject("alpha", Kind.POSTING, "beta"), wrong)
        await bank.submit(transfer("after-core-poison", "alpha/a1", "beta/b1"))
        final = await bank.wait("alpha", ["after-core-poison"])
        assert final["after-core-poison"].outcome is Outcome.OK
        letters = await dead_letters(bank)
        reasons = sorted(h["Natsbank-Reason"] for _, h, _ in letters)
        assert reasons == ["PROTOCOL_VIOLATION", "UNDECODABLE"]
        assert (await bank.audit()).ok


async def test_a_dead_core_instance_leaves_nothing_stranded_its_sibling_adopts_it(nats1):
    async with live_bank(nats1, mode="core") as bank:
        survivor = bank.start("alpha", sweep_interval=1.0)  # its first sweep: nothing yet
        await asyncio.sleep(0.5)
        doomed = bank.start("alpha", sweep_interval=1.0)
        ids = [f"s-{i}" for i in range(40)]
        for i in ids:  # beta is down: every posting is lost, only a resend can deliver it
            await bank.submit(transfer(i, "alpha/a1", "beta/b1", "1.00"))

        async def both_took_all() -> bool:  # both take submissions: they share the consumer
            return bool(doomed.stats.groups) and (
                survivor.stats.messages + doomed.stats.messages >= 40
            )

        await until(both_took_all, "the 40 submissions taken, some by each", timeout=60.0)
        waiting_on_doomed = len(doomed.carrier.schedule)
        assert waiting_on_doomed > 0
        [task] = [t for s, t in bank.services if s is doomed]
        task.cancel()  # dies with its resend clock; nobody else was told of its postings
        bank.start("beta")
        final = await bank.wait("alpha", ids, timeout=60)
        assert len(final) == 40 and {s.outcome for s in final.values()} == {Outcome.OK}
        assert survivor.carrier.stats.adopted >= waiting_on_doomed
        report = await bank.audit()
        assert report.ok, report.violations


async def test_core_mode_admits_no_submission_while_its_window_is_full(nats1):
    async with live_bank(nats1, mode="core") as bank:
        alpha = bank.start("alpha", fetch_batch=1, window=5)
        ids = [f"w-{i}" for i in range(30)]
        for i in ids:  # beta is down: each admitted posting waits for its result
            await bank.submit(transfer(i, "alpha/a1", "beta/b1", "1.00"))

        async def window_full() -> bool:
            return alpha.stats.window_full > 0

        await until(window_full, "alpha's window full", timeout=60.0)
        await asyncio.sleep(1.0)
        assert alpha.stats.window_full > 0
        assert (
            alpha.stats.messages == 5 and len(alpha.carrier.schedule) == 5
        )  # 25 wait in the inbox
        bank.start("beta")
        final = await bank.wait("alpha", ids, timeout=60)
        assert len(final) == 30 and {s.outcome for s in final.values()} == {Outcome.OK}
        report = await bank.audit()
        assert report.ok, report.violations
