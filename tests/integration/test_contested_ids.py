"""Which content owns a contested id is a rule, not a race: of two contents ACKed for one
transfer id, the one ACKed first is decided, and the other is dead-lettered ID_CONFLICT, also
with two instances taking turns on the same inbox (docs/PROTOCOL.md section 7)."""

from __future__ import annotations

import asyncio

from tests.integration.ledger_reads import dead_letters, record
from tests.integration.live_bank import LiveBank, transfer

RACES = 20


async def test_the_first_acked_content_owns_the_id_with_two_instances(bank: LiveBank):
    first, later = {}, {}
    for i in range(RACES):
        tid = f"contested-{i}"
        first[tid] = transfer(tid, "alpha/a1", "beta/b1", "1.00")
        later[tid] = transfer(tid, "alpha/a1", "beta/b1", "2.00")  # same id, other content
        await bank.submit(first[tid])  # ACKed first...
        await bank.submit(later[tid])  # ...then this one
    # Two instances that take one message at a time: the two contents of an id are held by
    # different instances at once, every time.
    bank.start("alpha", fetch_batch=1)
    bank.start("alpha", fetch_batch=1)
    bank.start("beta")
    final = await bank.wait("alpha", list(first), timeout=60)
    assert len(final) == RACES
    for tid, request in first.items():
        state = await record(bank, "alpha", f"alpha.out.{tid}")
        assert state.transfer.amount == request.amount, f"{tid}: the later content won"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(letters := await dead_letters(bank)) < RACES:
        assert loop.time() < deadline, f"{len(letters)} of {RACES} conflicts dead-lettered"
        await asyncio.sleep(0.2)
    assert {h["Natsbank-Reason"] for _, h, _ in letters} == {"ID_CONFLICT"}
    assert (await bank.audit()).ok
