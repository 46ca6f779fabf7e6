"""Reads of the state held in the ledger buckets and the registry: the latest revision of every
key, in one pass. Exact: `read_messages` reads until it reached what the stream leader has."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from eventsource.adapters.registry import KV_OPERATION
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.events import (
    AccountSnapshot,
    TransferState,
    account_event_decoder,
    transfer_event_decoder,
)
from eventsource.core.quarantine import decode_each
from eventsource.core.subjects import ledger_bucket


async def kv_revisions(
    nc: Client, bucket: str, key_filter: str = ">"
) -> dict[str, tuple[bytes, int]]:
    """key -> (latest value, its stream sequence), with one ephemeral consumer (last message
    per subject, then whatever came after it: the last one seen wins)."""
    prefix = f"$KV.{bucket}."
    latest: dict[str, tuple[bytes, int]] = {}
    reading = read_messages(nc, f"KV_{bucket}", [prefix + key_filter], last_per_subject=True)
    async for msg in reading:
        key = msg.subject[len(prefix) :]
        if (msg.headers or {}).get(KV_OPERATION):
            latest.pop(key, None)  # deleted or purged
        else:
            latest[key] = (msg.data, msg.seq)
    return latest


log = logging.getLogger("natsbank.views")


async def kv_latest(nc: Client, bucket: str, key_filter: str = ">") -> dict[str, bytes]:
    """key -> latest value."""
    return {key: data for key, (data, _) in (await kv_revisions(nc, bucket, key_filter)).items()}


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
