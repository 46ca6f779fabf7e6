"""Core-NATS mode under a flood: what arrives faster than the instance decides is shed at the
door, counted, and never held beyond the inbox's bounds; the service goes on."""

from __future__ import annotations

import asyncio

from eventsource.core.messages import Kind
from eventsource.core.model import Outcome
from eventsource.core.subjects import core_subject
from tests.integration.live_bank import live_bank, transfer

JUNK_BYTES = 100_000
JUNK_MESSAGES = 200
HELD_BYTES_MAX = 2_000_000  # room for about 20 of them


async def test_a_flood_is_shed_at_the_door_and_the_service_goes_on(nats1):
    async with live_bank(nats1, mode="core") as bank:
        bank.start("alpha")
        beta = bank.start("beta")
        inbox = beta.carrier.inbox
        inbox.bytes_max = HELD_BYTES_MAX
        await asyncio.wait_for(inbox.listening.wait(), 60)
        junk = b"x" * JUNK_BYTES
        # The engine is held while the flood arrives, so nothing is decided meanwhile and the
        # outcome does not depend on how fast the instance is.
        async with beta.engine._turn:
            for _ in range(JUNK_MESSAGES):
                await bank.nc.publish(core_subject("beta", Kind.POSTING, "alpha"), junk)
            await bank.nc.flush()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while inbox.received < JUNK_MESSAGES:
                assert loop.time() < deadline, f"{inbox.received} of the flood arrived"
                await asyncio.sleep(0.05)
            assert inbox.held_bytes <= HELD_BYTES_MAX
            # At most two queues' worth got in: what is queued now, and what the listener took
            # out just before the engine was held.
            assert inbox.shed >= JUNK_MESSAGES - 2 * (HELD_BYTES_MAX // JUNK_BYTES)
        assert beta.figures()["shed"] == inbox.shed
        # Still serving: a transfer to beta ends OK, and the audit is clean.
        await bank.submit(transfer("after-flood", "alpha/a1", "beta/b1", "3.00"))
        final = await bank.wait("alpha", ["after-flood"], timeout=60)
        assert final["after-flood"].outcome is Outcome.OK
        report = await bank.audit()
        assert report.ok, report.violations
