"""I5 through the KV API: the latest revision of every key is what the fold of its events gave
(an account's state; for a transfer record, the very message the fold took last).

Keys are read with one direct get each, a batch in flight at a time, in the order of their
latest revision in the stream, so the servers walk their files once, front to back. A
last-per-subject consumer over the 4 million subjects of 2,000,000 transfers took the machine
from 9 to 21 GB in 90 seconds. A direct get may be answered by a replica that lags, so a
mismatch is read again from the stream leader before it is reported.
"""

from __future__ import annotations

import asyncio
import functools

import msgspec
from nats.aio.client import Client
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry
from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import AccountSnapshot, account_event_decoder
from eventsource.core.subjects import is_account_key, ledger_stream, partition_of, state_subject

BATCH = 500  # requests in flight: enough to hide the round trip, few enough to stay polite


async def check_kv(nc: Client, partitions: int, fold: CompactFold, report) -> None:
    js = nc.jetstream()
    for keys in _in_stream_order(fold, partitions):
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            found = await asyncio.gather(*(_latest(js, partitions, key) for key in batch))
            for key, msg in zip(batch, found, strict=True):
                if _agrees(fold, key, msg):
                    continue
                msg = await _latest(js, partitions, key, from_leader=True)
                if msg is None:
                    report.violations["I5"].append(f"{key} is missing from KV")
                elif not _agrees(fold, key, msg):
                    kind = "account" if is_account_key(key) else "transfer"
                    report.violations["I5"].append(f"{kind} {key}: KV differs from the events")


def _in_stream_order(fold: CompactFold, partitions: int) -> list[list[str]]:
    """Per partition, its keys by the stream sequence of their latest event (accounts first)."""
    ordered: list[list[tuple[int, str]]] = [[] for _ in range(partitions)]
    for key in fold.accounts:
        ordered[_partition(key, partitions)].append((0, key))
    for key, mark in fold.transfers.items():
        ordered[_partition(key, partitions)].append((mark.last_seq, key))
    return [[key for _, key in sorted(keys)] for keys in ordered]


def _agrees(fold: CompactFold, key: str, msg: RawStreamMsg | None) -> bool:
    if msg is None:
        return False
    if not is_account_key(key):
        return fold.transfers[key].last_seq == msg.seq
    try:
        state = account_event_decoder.decode(msg.data or b"").state
    except msgspec.DecodeError:
        return False
    return AccountSnapshot.of(fold.accounts[key]) == state


async def _latest(
    js: JetStreamContext, partitions: int, key: str, *, from_leader: bool = False
) -> RawStreamMsg | None:
    """The latest revision (a delete marker included), or None if the key has none. A read:
    retried through transient unavailability."""
    k = _partition(key, partitions)
    subject = state_subject(k, key)
    get = functools.partial(js.get_msg, ledger_stream(k), subject=subject, direct=not from_leader)
    try:
        return await transient_retry(get, what=f"read of {subject}")
    except NotFoundError:
        return None


def _partition(key: str, partitions: int) -> int:
    return partition_of(key.split(".", 1)[0], partitions)  # a key lives with its owner
