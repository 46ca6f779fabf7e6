"""Reads of the KV state buckets: the latest value of every key, in one pass."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import (
    AccountSnapshot,
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.subjects import ACCOUNTS_BUCKET, TRANSFERS_BUCKET


async def kv_latest(nc: Client, bucket: str, key_filter: str = ">") -> dict[str, bytes]:
    """key -> latest value, read with one ephemeral consumer (last message per subject)."""
    prefix = f"$KV.{bucket}."
    return {
        msg.subject[len(prefix) :]: msg.data
        async for msg in read_messages(
            nc, f"KV_{bucket}", [prefix + key_filter], last_per_subject=True
        )
    }


async def list_accounts(nc: Client, participant: str | None = None) -> list[AccountSnapshot]:
    key_filter = f"{participant}.acct.*" if participant else "*.acct.*"
    values = await kv_latest(nc, ACCOUNTS_BUCKET, key_filter)
    return [account_event_decoder.decode(values[k]).state for k in sorted(values)]


async def list_transfers(nc: Client, key_filter: str = ">") -> dict[str, TransferState]:
    values = await kv_latest(nc, TRANSFERS_BUCKET, key_filter)
    return {k: transfer_event_decoder.decode(v).state for k, v in values.items()}


async def kv_lag(nc: Client) -> int:
    """Ledger messages the state buckets have not sourced yet (0 when caught up)."""
    js = nc.jetstream()
    lag = 0
    for bucket in (ACCOUNTS_BUCKET, TRANSFERS_BUCKET):
        info = await js.stream_info(f"KV_{bucket}")
        for source in info.sources or []:
            lag += source.lag or 0
    return lag


async def wait_kv_caught_up(nc: Client, timeout: float = 60.0) -> bool:
    """After a leader change the server re-establishes sourcing; this waits for it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await kv_lag(nc) > 0:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.25)
    return True
