"""Reads of the state held in the ledger buckets: the latest revision of every key, in one pass."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import (
    AccountSnapshot,
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.quarantine import decode_each
from eventsource.core.subjects import ledger_bucket

log = logging.getLogger("natsbank.views")


async def kv_latest(nc: Client, bucket: str, key_filter: str = ">") -> dict[str, bytes]:
    """key -> latest value, read with one ephemeral consumer (last message per subject)."""
    prefix = f"$KV.{bucket}."
    return {
        msg.subject[len(prefix) :]: msg.data
        async for msg in read_messages(
            nc, f"KV_{bucket}", [prefix + key_filter], last_per_subject=True
        )
    }


async def state_values(nc: Client, partitions: int, key_filter: str) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for k in range(partitions):
        values |= await kv_latest(nc, ledger_bucket(k), key_filter)
    return values


async def list_accounts(
    nc: Client, partitions: int, participant: str | None = None
) -> list[AccountSnapshot]:
    values = await state_values(nc, partitions, f"{participant or '*'}.acct.*")
    events = _readable(values, account_event_decoder.decode)
    return [events[k].state for k in sorted(events)]


async def list_transfers(nc: Client, partitions: int, key_filter: str) -> dict[str, TransferState]:
    values = await state_values(nc, partitions, key_filter)
    return {k: e.state for k, e in _readable(values, transfer_event_decoder.decode).items()}


def _readable(values: dict[str, bytes], decode):
    """The values that decode; a quarantined record is left out, with a warning."""
    decoded, quarantined = decode_each(values, decode)
    for record in quarantined:
        log.warning("%s", record.describe())
    return decoded
