"""What a test reads straight from a live bank's streams: one side's record of a transfer, an
account's money, the dead letters."""

from __future__ import annotations

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.state_reader import decode_state
from eventsource.core.events import TransferState
from eventsource.core.subjects import account_key, ledger_stream, state_subject
from eventsource.services.client import read_transfer
from tests.integration.live_bank import LiveBank


async def record(bank: LiveBank, owner: str, key: str) -> TransferState | None:
    found = await read_transfer(bank.nc, bank.partitions, owner, key)
    return found[0] if found else None


async def account(bank: LiveBank, owner: str, name: str) -> tuple[int, int, int]:
    """(balance, pending debits, pending credits) in minor units, from the stream leader."""
    key = account_key(owner, name)
    data, _ = await read_last(bank.nc, ledger_stream(0), state_subject(0, key), leader=True)
    state = decode_state(key, data)
    return state.balance, state.pending_debits, state.pending_credits


UNTOUCHED = (100000, 0, 0)  # a funded account (1000.00) that no transfer moved


async def dead_letters(bank: LiveBank) -> list[tuple[str, dict, bytes]]:
    js = bank.nc.jetstream()
    if (await js.stream_info("DEADLETTER")).state.messages == 0:
        return []
    found = []
    sub = await js.pull_subscribe("nb.dlq.>", stream="DEADLETTER")
    msgs = await sub.fetch(100, timeout=2)
    for msg in msgs:
        found.append((msg.subject, dict(msg.headers or {}), msg.data))
        await msg.ack()
    await sub.unsubscribe()
    return found
