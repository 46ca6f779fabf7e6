"""I6: the projection equals the state in the ledger buckets.

The state is read here as plain JSON, key by key, straight from the KV buckets (raw bytes, read
exactly): not through natsbank's decoders, and not with a copy of
`projections.compare.expected_rows`, so that a mistake there cannot hide the same mistake in the
projection."""

from __future__ import annotations

import json

from eventsource.adapters.views import kv_revisions
from eventsource.core.subjects import ledger_bucket
from projections.model import PHASE_COLUMN
from projections.store import ProjectionDb
from tests.integration.live_bank import LiveBank

PHASES = list(PHASE_COLUMN)
ACCOUNT_FIELDS = ("participant", "account", "currency", "balance", "pending_debits",
                  "pending_credits", "closed")  # fmt: skip
RECORD_FIELDS = ("phase", "outcome", "cause", "detail")


def _as_projected(value):
    """The documented rule (ARCHITECTURE.md, the projection): SQL text holds no NUL, so a NUL
    that a request brought is shown as U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


async def kv_rows(bank: LiveBank) -> tuple[dict, dict]:
    """Every account and transfer record of the banks, by key, in the shape of ProjectedState
    (transfers without their phase times)."""
    accounts: dict[str, tuple] = {}
    transfers: dict[str, tuple] = {}
    for k in range(bank.partitions):
        # The raw latest value of every key, read to the stream's end as its leader has it
        # (nats-py's KV key listing can come back empty while keys exist: NoKeysError).
        latest = await kv_revisions(bank.nc, ledger_bucket(k))
        for key, (value, _) in latest.items():
            owner, kind, *_ = parts = key.split(".")
            if owner not in bank.participants:
                continue  # not a record of the banks: the junk a test published, say
            if (kind, len(parts)) not in {("acct", 3), ("out", 3), ("in", 4)}:
                continue
            state = json.loads(value)["state"]
            if kind == "acct":
                accounts[key] = tuple(state[name] for name in ACCOUNT_FIELDS)
            else:
                transfer = state["transfer"]
                transfers[key] = (
                    owner,
                    state["side"],
                    transfer["id"],
                    _as_projected(transfer["amount"]),
                    _as_projected(transfer["currency"]),
                    *(_as_projected(state[name]) for name in RECORD_FIELDS),
                )
    return accounts, transfers


async def assert_projection_equals_state(bank: LiveBank, store: ProjectionDb) -> None:
    accounts, transfers = await kv_rows(bank)
    projected = await store.state()
    assert projected.accounts == accounts
    assert {k: v[:9] for k, v in projected.transfers.items()} == transfers
    for key, row in projected.transfers.items():
        phase_times = dict(zip(PHASES, row[9], strict=True))
        assert phase_times[row[5]] is not None, f"{key}: no time for its phase {row[5]}"


async def equals_state(bank: LiveBank, store: ProjectionDb) -> bool:
    await store.open()
    try:
        await assert_projection_equals_state(bank, store)
    except AssertionError:
        return False
    finally:
        await store.close()
    return True
