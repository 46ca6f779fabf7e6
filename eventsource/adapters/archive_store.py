"""The ledger archive in the NATS Object Store (bucket `ledger_archive`, issue 12).

A period of partition k is stored as `.events`, its `.ids.<shard>`, `.filter`, `.snapshot`,
then the id directory entries, then `.manifest`: the manifest is written last and only after
every object was read back and matched its digest, so a period without a manifest was never
archived (nothing of it may be purged from the ledger), and one with a manifest is complete and
indexed. Formats: `core/archive_format.py`, `core/archive_manifest.py`, `core/archive_ids.py`,
`core/archive_filter.py` and docs/ARCHIVE.md. Every NATS call goes through the bounded retry.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping

from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from eventsource.adapters.archive_filters import FilterCache
from eventsource.adapters.archive_reader import (
    IdsCache,
    find_entry,
    manifest_of,
    period_messages,
    snapshot_json,
)
from eventsource.adapters.archive_verify import verify_objects
from eventsource.adapters.archive_writer import (
    LedgerMessage,
    check_follows,
    check_funded,
    checked_extras,
    commit_manifest,
    put_filter,
    put_ids_shards,
    put_snapshot,
    read_back,
    spool_events,
)
from eventsource.adapters.object_store_io import (
    delete_object,
    open_bucket,
    put_bytes,
    put_file,
    read_small,
)
from eventsource.adapters.retry import transient_retry
from eventsource.core.archive_format import (
    ArchivedMessage,
    PeriodExtras,
    events_object,
    hour_object,
    manifest_object,
)
from eventsource.core.archive_head import ZERO_CHAIN
from eventsource.core.archive_ids import (
    IdEntry,
    decode_periods,
    encode_periods,
    is_hour_name,
)
from eventsource.core.archive_manifest import FoldFigures, Manifest
from eventsource.core.archive_period import PeriodBuilder
from eventsource.core.errors import ArchiveCorrupt, ArchiveNotFound, ConfigError
from eventsource.core.limits import (
    ARCHIVE_BUCKET,
    ARCHIVE_DIRECTORY_HOURS_MAX,
    ARCHIVE_SMALL_OBJECT_BYTES_MAX,
    ARCHIVE_SPOOL_MEMORY_BYTES,
)
from eventsource.core.subjects import ledger_stream

__all__ = [
    "ZERO_CHAIN",
    "ArchivedMessage",
    "Manifest",
    "PeriodExtras",
    "add_to_directory",
    "check_head",
    "find_record",
    "find_transfer",
    "read_manifest",
    "read_period",
    "read_snapshot",
    "verify_chain",
    "verify_period",
    "write_period",
]

_CHAIN_TEXT = re.compile(r"[0-9a-f]{64}")
ids_cache = IdsCache()  # the ids shards lookups decoded last, shared by every lookup
filter_cache = FilterCache()  # the periods' key filters lookups read, shared likewise


async def write_period(
    nc: Client,
    partition: int,
    period: int,
    messages: AsyncIterable[LedgerMessage] | Iterable[LedgerMessage],
    prev_chain: str,
    funded: Mapping[str, int] | None = None,
    *,
    first_seq: int,
    end_seq: int,
    extras: Callable[[], PeriodExtras],
    ids_below_ms: int | None = None,
) -> Manifest:
    """Archive the messages `first_seq <= seq < end_seq` of partition k as `period`; return its
    manifest once everything is stored, read back and indexed. Writing a period again replaces
    it (its old manifest is deleted first, so an interrupted rewrite leaves none).

    `messages` must be exactly that range in order (PeriodIncomplete otherwise, nothing
    written). Period p > 0 must start where period p-1 ended, with its chain as `prev_chain`;
    period 0 with ZERO_CHAIN. `funded` is counted from the FUNDED entries (carried copies
    excepted); a value given must equal it. `extras` is called once, after the last message
    went through `messages`: the caller folds them as they stream, and knows its snapshot then.
    `ids_below_ms`: see Manifest (the archiver's cut plus twice the clock skew).
    """
    builder = PeriodBuilder(partition, period, first_seq, end_seq)
    if not _CHAIN_TEXT.fullmatch(prev_chain):
        raise ValueError(f"prev_chain must be 64 lowercase hex digits, got {prev_chain!r:.80}")
    js = nc.jetstream()
    store = await _bucket(js, partition, create=True)
    assert store is not None
    before = await check_follows(js, store, builder, prev_chain)
    await delete_object(store, manifest_object(partition, period))
    with tempfile.SpooledTemporaryFile(max_size=ARCHIVE_SPOOL_MEMORY_BYTES) as spool:
        events_sha256 = await spool_events(messages, builder, spool)
        builder.finish()
        check_funded(builder, funded)
        given = checked_extras(builder, extras())
        await put_file(store, events_object(partition, period), spool)
    ids_shard_sha256 = await put_ids_shards(store, builder, builder.ids_shards())
    filter_sha256 = await put_filter(store, builder, builder.key_filter())
    manifest = builder.manifest(
        events_sha256=events_sha256,
        ids_shard_sha256=ids_shard_sha256,
        snapshot_sha256=await put_snapshot(store, builder, given.snapshot),
        figures=FoldFigures.of(given),
        prev_chain=prev_chain,
        archived_at_ms=time.time_ns() // 1_000_000,
        ids_below_ms=builder.ids_below(ids_below_ms, before),
        filter_sha256=filter_sha256,
    )
    await read_back(js, store, manifest)
    await add_to_directory(nc, partition, period, builder.hours())
    await commit_manifest(js, store, manifest)
    return manifest


async def read_manifest(nc: Client, partition: int, period: int) -> Manifest | None:
    """The period's manifest, or None: not archived, or its write did not finish."""
    js = nc.jetstream()
    store = await _bucket(js, partition, create=False)
    return None if store is None else await manifest_of(js, store, partition, period)


async def read_period(nc: Client, partition: int, period: int) -> AsyncIterator[ArchivedMessage]:
    """The archived messages in stream order, streamed. Each one's payload is the stored
    payload byte for byte. ArchiveCorrupt, raised at the latest after the last message, if the
    events differ from the manifest: a consumer must not act on a period it did not finish."""
    js = nc.jetstream()
    store, manifest = await _committed(js, partition, period)
    async for message in period_messages(js, store, manifest):
        yield message


async def read_snapshot(nc: Client, partition: int, period: int) -> bytes:
    """The snapshot the archiver gave for `period` (uncompressed, as encode_snapshot made it),
    checked against its manifest: ArchiveNotFound without one, ArchiveCorrupt if it differs."""
    js = nc.jetstream()
    store, manifest = await _committed(js, partition, period)
    return await snapshot_json(js, store, manifest)


async def check_head(nc: Client, partition: int, period: int, chain: str) -> Manifest:
    """The manifest of `period` (the newest an archive head names), checked against the head's
    `chain` and against itself, and its snapshot read against its digest. A rewrite of the
    period, consistent in itself, still changes its chain; only the head (kept elsewhere)
    tells. ArchiveNotFound without a manifest, ArchiveCorrupt naming what differs."""
    js = nc.jetstream()
    store, manifest = await _committed(js, partition, period)  # consistent in itself
    if manifest.chain != chain:
        raise ArchiveCorrupt(
            f"archive of partition {partition} period {period}: its chain {manifest.chain} "
            f"is not the head's {chain}"
        )
    await snapshot_json(js, store, manifest, keep=False)
    return manifest


async def verify_period(nc: Client, partition: int, period: int, prev_chain: str) -> Manifest:
    """Re-read the period and check everything its manifest says: every digest, the chain
    from `prev_chain`, the sequence range without a gap, the count, the ids shards and the
    funding. Return the manifest, or raise ArchiveNotFound / ArchiveCorrupt naming what is
    wrong. (The fold's figures, `settled`, `confirmed` and the problems, only the chain
    covers: the store does not fold.)"""
    js = nc.jetstream()
    store, manifest = await _committed(js, partition, period)  # its chain matches its fields
    await verify_objects(js, store, manifest, prev_chain)
    return manifest


async def verify_chain(nc: Client, partition: int, periods: int) -> list[Manifest]:
    """verify_period for periods 0..periods-1, each from the chain of the one before, and each
    starting where the one before ended."""
    manifests: list[Manifest] = []
    prev_chain = ZERO_CHAIN
    for period in range(periods):
        manifest = await verify_period(nc, partition, period, prev_chain)
        if manifests and manifest.first_seq != manifests[-1].end_seq:
            raise ArchiveCorrupt(
                f"archive of partition {partition} period {period}: starts at "
                f"{manifest.first_seq}, period {period - 1} ended before {manifests[-1].end_seq}"
            )
        manifests.append(manifest)
        prev_chain = manifest.chain
    return manifests


async def find_record(nc: Client, partition: int, key: str, id_time_ms: int | None) -> bytes | None:
    """The final event (its payload, byte for byte) of the archived record `key` (`<N>.out.<ID>`
    or `<P>.in.<N>.<ID>`), or None. `id_time_ms` is `id_time_ms(ID)`: the lookup reads the
    periods listed under that hour and under UNTIMED, newest first, and in each period only
    the one ids shard the key belongs to."""
    found = await _find(nc, partition, key, id_time_ms)
    return None if found is None else found[1].payload(f"archived record {key}")


async def find_transfer(
    nc: Client, partition: int, key: str, id_time_ms: int | None
) -> tuple[int, str, str | None] | None:
    """(period, digest, outcome) of the archived final record `key`, found as find_record."""
    found = await _find(nc, partition, key, id_time_ms)
    return None if found is None else (found[0], found[1].digest, found[1].outcome)


async def add_to_directory(nc: Client, partition: int, period: int, hours: set[str]) -> None:
    """List `period` under each of `hours` (`YYYYMMDDHH` or UNTIMED): read, add, write back.
    Safe to repeat; only one archiver per partition may run it at a time (its caller's rule)."""
    bad = sorted(hour for hour in hours if not is_hour_name(hour))
    if bad or len(hours) > ARCHIVE_DIRECTORY_HOURS_MAX + 1:
        raise ValueError(f"hours must be at most {ARCHIVE_DIRECTORY_HOURS_MAX + 1} names: {bad}")
    js = nc.jetstream()
    store = await _bucket(js, partition, create=True)
    assert store is not None
    for hour in sorted(hours):
        name = hour_object(partition, hour)
        data = await read_small(js, store, ARCHIVE_BUCKET, name, ARCHIVE_SMALL_OBJECT_BYTES_MAX)
        periods = [] if data is None else decode_periods(data, name)
        if period not in periods:
            await put_bytes(store, name, encode_periods([*periods, period]))


async def _find(
    nc: Client, partition: int, key: str, id_time_ms: int | None
) -> tuple[int, IdEntry] | None:
    js = nc.jetstream()
    store = await _bucket(js, partition, create=False)
    if store is None:
        return None
    return await find_entry(js, store, ids_cache, filter_cache, partition, key, id_time_ms)


async def _committed(
    js: JetStreamContext, partition: int, period: int
) -> tuple[ObjectStore, Manifest]:
    store = await _bucket(js, partition, create=False)
    manifest = None if store is None else await manifest_of(js, store, partition, period)
    if store is None or manifest is None:
        raise ArchiveNotFound(f"partition {partition} period {period} is not archived")
    return store, manifest


async def _bucket(js: JetStreamContext, partition: int, *, create: bool) -> ObjectStore | None:
    async def ledger_replicas() -> int:
        stream = ledger_stream(partition)

        async def read() -> int:
            try:
                return (await js.stream_info(stream)).config.num_replicas or 1
            except NotFoundError:
                raise ConfigError(f"no ledger stream {stream}: nothing to archive") from None

        return await transient_retry(read, what=f"read of {stream}'s replicas")

    return await open_bucket(js, ARCHIVE_BUCKET, ledger_replicas if create else None)
