"""Reads of the KV state buckets: the latest value of every key, in one pass."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from eventsource.core.events import (
    AccountSnapshot,
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.subjects import ACCOUNTS_BUCKET, TRANSFERS_BUCKET


async def kv_latest(nc: Client, bucket: str, key_filter: str = ">") -> dict[str, bytes]:
    """key -> latest value, read with one ephemeral consumer (last message per subject)."""
    js = nc.jetstream()
    prefix = f"$KV.{bucket}."
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        filter_subject=prefix + key_filter,
        inactive_threshold=30.0,
    )
    sub = await js.pull_subscribe(prefix + key_filter, stream=f"KV_{bucket}", config=config)
    values: dict[str, bytes] = {}
    try:
        info = await sub.consumer_info()
        remaining = info.num_pending
        while remaining > 0:
            msgs = await sub.fetch(min(remaining, 2000), timeout=5.0)
            for msg in msgs:
                values[msg.subject[len(prefix) :]] = msg.data
            remaining = msgs[-1].metadata.num_pending if msgs else 0
    finally:
        await sub.unsubscribe()
    return values


async def list_accounts(nc: Client, participant: str | None = None) -> list[AccountSnapshot]:
    key_filter = f"{participant}.acct.*" if participant else "*.acct.*"
    values = await kv_latest(nc, ACCOUNTS_BUCKET, key_filter)
    return [account_event_decoder.decode(values[k]).state for k in sorted(values)]


async def list_transfers(nc: Client, key_filter: str = ">") -> dict[str, TransferState]:
    values = await kv_latest(nc, TRANSFERS_BUCKET, key_filter)
    return {k: transfer_event_decoder.decode(v).state for k, v in values.items()}
