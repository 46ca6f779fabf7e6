"""`natsbank audit --full`: every archived period verified again, streaming, one at a time.

Per partition and period, in order: the objects against their manifest and the chain from the
period before (adapters/archive_store.verify_period), then the period's events folded again
from the snapshot of the period before (core/archive_fold.py): the same checks as the live
audit's fold, and the result must be the snapshot and the money totals the period stored. The
last link must be the archive head's. Memory holds one period's fold at a time.
"""

from __future__ import annotations

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_meta import existing_meta_bucket, read_head
from eventsource.adapters.key_registry import operator_keys
from eventsource.core.archive_fold import CARRIED_HEADER, CutFold
from eventsource.core.archive_head import (
    ZERO_CHAIN,
    SnapshotEntry,
    decode_snapshot,
    encode_snapshot,
)
from eventsource.core.archive_manifest import Manifest
from eventsource.core.errors import ArchiveError
from eventsource.core.subjects import key_of_subject, ledger_stream


async def verify_archive(nc: Client, partitions: int) -> list[str]:
    """What is wrong with the archive, as audit problems naming their invariant."""
    kv = await existing_meta_bucket(nc)
    if kv is None:
        return []
    problems: list[str] = []
    for k in range(partitions):
        stream = ledger_stream(k)
        head, _ = await read_head(kv, stream)
        chain, snapshot = ZERO_CHAIN, []
        for period in range(head.period):
            where = f"{stream} period {period}"
            try:
                manifest = await archive_store.verify_period(nc, k, period, chain)
                snapshot = await _refold(nc, k, period, manifest, snapshot, where, problems)
            except ArchiveError as exc:
                problems.append(f"{where}: {exc} (I5)")
                break
            chain = manifest.chain
        else:
            if chain != head.chain:
                problems.append(f"{stream}: the archive head's chain is not its last period's (I5)")
    return problems


async def _refold(
    nc: Client,
    partition: int,
    period: int,
    manifest: Manifest,
    before: list[SnapshotEntry],
    where: str,
    problems: list[str],
) -> list[SnapshotEntry]:
    cut = CutFold.seeded_with(before, tuple(await operator_keys(nc)))
    async for message in archive_store.read_period(nc, partition, period):
        key = key_of_subject(message.subject)
        if key is not None:
            carried = CARRIED_HEADER in message.headers
            cut.add(key, message.payload, message.seq, carried=carried)
    problems.extend(f"{where}: {problem}" for problem in cut.fold.problems)
    stored = decode_snapshot(await archive_store.read_snapshot(nc, partition, period))
    if encode_snapshot(cut.snapshot()) != encode_snapshot(stored):
        problems.append(f"{where}: its snapshot is not the fold of its events (I5)")
    moved = (dict(cut.fold.settled), dict(cut.fold.confirmed), dict(cut.fold.funded))
    if moved != (manifest.settled, manifest.confirmed, manifest.funded):
        problems.append(f"{where}: its money totals are not its events' (I1)")
    return stored
