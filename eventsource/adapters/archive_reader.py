"""Reading archived periods back: manifests, the events stream, the ids shards, the snapshot
and the id directory, each exact (stream leader) and streamed or bounded. `archive_store.py` is
the API."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from eventsource.adapters.archive_filters import FilterCache
from eventsource.adapters.object_store_io import object_info, read_chunks, read_small
from eventsource.core.archive_format import (
    TIME_MS_MAX,
    ArchivedMessage,
    decode_line,
    events_object,
    hour_object,
    ids_object,
    manifest_object,
    snapshot_object,
)
from eventsource.core.archive_ids import (
    UNTIMED,
    IdEntry,
    decode_ids,
    decode_periods,
    hour_bucket,
    ids_shard_of,
)
from eventsource.core.archive_manifest import Manifest, decode_manifest
from eventsource.core.archive_period import GunzipLines, Inflater
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_BUCKET,
    ARCHIVE_IDS_BYTES_MAX,
    ARCHIVE_IDS_CACHE_SHARDS,
    ARCHIVE_SMALL_OBJECT_BYTES_MAX,
    ARCHIVE_SNAPSHOT_BYTES_MAX,
)

# A stream of events is never held whole; its total is bounded only by the period itself.
_EVENTS_BYTES_UNBOUNDED = None


async def manifest_of(
    js: JetStreamContext, store: ObjectStore, partition: int, period: int
) -> Manifest | None:
    name = manifest_object(partition, period)
    data = await read_small(js, store, ARCHIVE_BUCKET, name, ARCHIVE_SMALL_OBJECT_BYTES_MAX)
    if data is None:
        return None
    manifest = decode_manifest(data, name)
    if (manifest.partition, manifest.period) != (partition, period):
        raise ArchiveCorrupt(
            f"{name}: says partition {manifest.partition} period {manifest.period}"
        )
    if inconsistent := manifest.inconsistencies():
        raise ArchiveCorrupt(f"{name}: {'; '.join(inconsistent)}")
    return manifest


async def events_digest(js: JetStreamContext, store: ObjectStore, name: str) -> tuple[str, int]:
    """SHA-256 of the uncompressed events and their number of lines, read back whole."""
    inflater = Inflater(name, _EVENTS_BYTES_UNBOUNDED)
    lines = 0
    async for chunk in _chunks_of(js, store, name):
        for out in inflater.feed(chunk):
            lines += out.count(b"\n")
    inflater.finish()
    return inflater.sha256.hexdigest(), lines


async def gunzipped(
    js: JetStreamContext, store: ObjectStore, name: str, size_max: int, *, keep: bool = True
) -> tuple[bytes, str]:
    """A gzip object uncompressed (b"" unless `keep`: a read back needs only the digest) and
    the SHA-256 of its uncompressed bytes; ArchiveCorrupt beyond `size_max` bytes."""
    inflater = Inflater(name, size_max)
    pieces: list[bytes] = []
    async for chunk in _chunks_of(js, store, name):
        for out in inflater.feed(chunk):
            if keep:
                pieces.append(out)
    inflater.finish()
    return b"".join(pieces), inflater.sha256.hexdigest()


async def ids_shard_json(
    js: JetStreamContext, store: ObjectStore, manifest: Manifest, shard: int, *, keep: bool = True
) -> bytes:
    """One ids shard, uncompressed, checked against its digest in the manifest."""
    name = ids_object(manifest.partition, manifest.period, shard)
    data, sha256 = await gunzipped(js, store, name, ARCHIVE_IDS_BYTES_MAX, keep=keep)
    if sha256 != manifest.ids_shard_sha256[shard]:
        raise ArchiveCorrupt(f"{name}: its SHA-256 differs from the manifest's ids_shard_sha256")
    return data


async def snapshot_json(
    js: JetStreamContext, store: ObjectStore, manifest: Manifest, *, keep: bool = True
) -> bytes:
    """The period's snapshot, uncompressed, checked against the manifest's snapshot_sha256."""
    name = snapshot_object(manifest.partition, manifest.period)
    data, sha256 = await gunzipped(js, store, name, ARCHIVE_SNAPSHOT_BYTES_MAX, keep=keep)
    if sha256 != manifest.snapshot_sha256:
        raise ArchiveCorrupt(f"{name}: its SHA-256 differs from the manifest's snapshot_sha256")
    return data


async def period_messages(
    js: JetStreamContext, store: ObjectStore, manifest: Manifest
) -> AsyncIterator[ArchivedMessage]:
    """The period's messages in order, checked against the manifest as they come (sequences)
    and at the end (count, SHA-256): a reader that got to the end got the archived period."""
    name = events_object(manifest.partition, manifest.period)
    lines = GunzipLines(name, _EVENTS_BYTES_UNBOUNDED)
    expected = manifest.first_seq
    async for chunk in _chunks_of(js, store, name):
        for line in lines.feed(chunk):
            message = decode_line(line, f"{name} line {expected - manifest.first_seq + 1}")
            if message.seq != expected or message.seq >= manifest.end_seq:
                raise ArchiveCorrupt(f"{name}: message {message.seq} where {expected} was due")
            expected += 1
            yield message
    lines.finish()
    if expected != manifest.end_seq:
        raise ArchiveCorrupt(f"{name}: ends at {expected - 1}, its manifest at {manifest.end_seq}")
    if lines.inflater.sha256.hexdigest() != manifest.events_sha256:
        raise ArchiveCorrupt(f"{name}: its SHA-256 differs from the manifest's events_sha256")


async def _chunks_of(js: JetStreamContext, store: ObjectStore, name: str) -> AsyncIterator[bytes]:
    info = await object_info(store, name)
    if info is None:
        raise ArchiveCorrupt(f"object {name} is missing")
    async for chunk in read_chunks(js, ARCHIVE_BUCKET, info):
        yield chunk


async def directory_periods(
    js: JetStreamContext, store: ObjectStore, partition: int, hour: str
) -> list[int]:
    name = hour_object(partition, hour)
    data = await read_small(js, store, ARCHIVE_BUCKET, name, ARCHIVE_SMALL_OBJECT_BYTES_MAX)
    return [] if data is None else decode_periods(data, name)


class IdsCache:
    """Decoded ids shards, the most recently used few. Keyed by the shard's digest in the
    manifest, so a period written again is never answered from its old ids. `reads` counts
    the shards read from the bucket."""

    def __init__(self, shards_max: int = ARCHIVE_IDS_CACHE_SHARDS) -> None:
        self._shards_max = shards_max
        self._shards: OrderedDict[tuple[int, int, int, str], dict[str, IdEntry]] = OrderedDict()
        self.reads = 0
        self.manifest_reads = 0  # manifests read by lookups (find_entry)

    async def entry(
        self, js: JetStreamContext, store: ObjectStore, manifest: Manifest, key: str
    ) -> IdEntry | None:
        """The period's entry for `key`, from the one shard the key belongs to."""
        shard = ids_shard_of(key, manifest.ids_shards)
        cache_key = (manifest.partition, manifest.period, shard, manifest.ids_shard_sha256[shard])
        if cache_key in self._shards:
            self._shards.move_to_end(cache_key)
            return self._shards[cache_key].get(key)
        name = ids_object(manifest.partition, manifest.period, shard)
        self.reads += 1
        ids = decode_ids(await ids_shard_json(js, store, manifest, shard), name)
        if any(ids_shard_of(found, manifest.ids_shards) != shard for found in ids):
            raise ArchiveCorrupt(f"{name}: holds a key of another shard")
        self._shards[cache_key] = ids
        while len(self._shards) > self._shards_max:
            self._shards.popitem(last=False)
        return ids.get(key)

    def __len__(self) -> int:
        return len(self._shards)

    def clear(self) -> None:
        self._shards.clear()


async def find_entry(
    js: JetStreamContext,
    store: ObjectStore,
    cache: IdsCache,
    filters: FilterCache,
    partition: int,
    key: str,
    id_time_ms: int | None,
) -> tuple[int, IdEntry] | None:
    """(period, entry) of the archived final record `key`: the periods listed under its hour
    and UNTIMED, newest first, and in each the one shard the key belongs to. It stops at the
    first period whose `ids_below_ms` is at or before the id's time (neither it nor an earlier
    one can hold the id: a recent id costs a manifest or two, however small the periods),
    skips the shard of a period whose id times do not cover the id's, and the shard of a
    period whose key filter says it does not hold the key."""
    hours = [UNTIMED]
    if id_time_ms is not None and 0 <= id_time_ms <= TIME_MS_MAX:
        hours.append(hour_bucket(id_time_ms))
    periods: set[int] = set()
    for hour in hours:
        periods.update(await directory_periods(js, store, partition, hour))
    for period in sorted(periods, reverse=True):
        cache.manifest_reads += 1  # never kept: a crashed run's period may be written again
        manifest = await manifest_of(js, store, partition, period)
        if manifest is None:
            continue  # listed by a write that did not finish: not archived
        if id_time_ms is not None and not _may_hold(manifest, id_time_ms):
            if manifest.ids_below_ms is not None and id_time_ms >= manifest.ids_below_ms:
                return None
            continue
        if not await filters.may_hold(js, store, manifest, key):
            continue  # certainly not in this period: its shard is not read
        entry = await cache.entry(js, store, manifest, key)
        if entry is not None:
            return period, entry
    return None


def _may_hold(manifest: Manifest, id_time_ms: int) -> bool:
    """Whether the period may hold an id of that time (its ids' time range, its bound)."""
    if manifest.ids_below_ms is not None and id_time_ms >= manifest.ids_below_ms:
        return False
    low, high = manifest.id_time_min_ms, manifest.id_time_max_ms
    return low is not None and high is not None and low <= id_time_ms <= high
