"""Dead-lettering never stalls an inbox: when a dead letter cannot be stored, only the message
that carried the poison waits for a later delivery; the rest of the fetch is decided, and the
dead letter is stored once the stream is back."""

from __future__ import annotations

import asyncio

from eventsource.adapters.provision import apply_topology
from eventsource.adapters.topology import Topology
from eventsource.core.model import Outcome
from eventsource.core.subjects import DEAD_LETTER_STREAM, submission_subject
from tests.integration.ledger_reads import dead_letters
from tests.integration.live_bank import LiveBank, transfer


async def test_a_dead_letter_that_cannot_be_stored_stalls_nothing(bank: LiveBank):
    js = bank.nc.jetstream()
    await js.delete_stream(DEAD_LETTER_STREAM)
    await js.publish(submission_subject(0, "alpha", "poison"), b"{not json")
    await bank.submit(transfer("fine", "alpha/a1", "beta/b1"))
    bank.start_all()
    final = await bank.wait("alpha", ["fine"])
    assert final["fine"].outcome is Outcome.OK  # decided while its neighbour's letter failed
    alpha = next(s for s, _ in bank.services if s.participant == "alpha")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while alpha.stats.dead_letters_unstored == 0:
        assert loop.time() < deadline, "the failed dead letter was never counted"
        await asyncio.sleep(0.1)
    await apply_topology(bank.nc, Topology(participants=bank.participants))  # the stream is back
    deadline = loop.time() + 60
    while not (letters := await dead_letters(bank)):
        assert loop.time() < deadline, "the poison never reached the dead letters"
        await asyncio.sleep(0.5)
    assert [h["Natsbank-Reason"] for _, h, _ in letters] == ["UNDECODABLE"]
    assert (await bank.audit()).ok
