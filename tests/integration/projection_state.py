"""I6: the projection equals the state in the ledger buckets."""

from __future__ import annotations

from eventsource.services.views import list_accounts, list_transfers
from projections.model import PHASE_COLUMN
from projections.store import Store
from tests.integration.live_bank import LiveBank

PHASES = list(PHASE_COLUMN)


async def kv_state(bank: LiveBank) -> tuple[dict, dict]:
    """What the projection must equal: every account and transfer record of the banks."""
    accounts = {
        f"{a.participant}.acct.{a.account}": (
            a.participant,
            a.account,
            a.currency,
            a.balance,
            a.pending_debits,
            a.pending_credits,
            a.closed,
        )
        for a in await list_accounts(bank.nc, bank.partitions)
    }
    records = {}
    for participant in bank.participants:
        for pattern in (f"{participant}.out.*", f"{participant}.in.*.*"):
            records |= await list_transfers(bank.nc, bank.partitions, pattern)
    transfers = {
        key: (
            key.split(".")[0],
            s.side.value,
            s.transfer.id,
            s.transfer.amount,
            s.transfer.currency,
            s.phase.value,
            s.outcome and s.outcome.value,
            s.cause and s.cause.value,
            s.detail,
        )
        for key, s in records.items()
    }
    return accounts, transfers


async def assert_projection_equals_state(bank: LiveBank, store: Store) -> None:
    accounts, transfers = await kv_state(bank)
    projected = await store.state()
    assert projected.accounts == accounts
    assert {k: v[:9] for k, v in projected.transfers.items()} == transfers
    for key, row in projected.transfers.items():
        phase_times = dict(zip(PHASES, row[9], strict=True))
        assert phase_times[row[5]] is not None, f"{key}: no time for its phase {row[5]}"


async def equals_state(bank: LiveBank, store: Store) -> bool:
    await store.open()
    try:
        await assert_projection_equals_state(bank, store)
    except AssertionError:
        return False
    finally:
        await store.close()
    return True
