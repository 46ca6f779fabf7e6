"""Reading archived periods back: manifests, the events stream, the ids object and the id
directory, each exact (stream leader) and streamed or bounded. `archive_store.py` is the API."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator

from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from eventsource.adapters.object_store_io import object_info, read_chunks, read_small
from eventsource.core.archive_format import (
    ArchivedMessage,
    IdEntry,
    Manifest,
    decode_ids,
    decode_line,
    decode_manifest,
    decode_periods,
    events_object,
    hour_object,
    ids_object,
    manifest_object,
)
from eventsource.core.archive_period import GunzipLines, Inflater
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_BUCKET,
    ARCHIVE_IDS_BYTES_MAX,
    ARCHIVE_IDS_CACHE_PERIODS,
    ARCHIVE_SMALL_OBJECT_BYTES_MAX,
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


async def ids_json(js: JetStreamContext, store: ObjectStore, name: str) -> tuple[bytes, str]:
    """The uncompressed ids object and its SHA-256."""
    inflater = Inflater(name, ARCHIVE_IDS_BYTES_MAX)
    pieces: list[bytes] = []
    async for chunk in _chunks_of(js, store, name):
        pieces.extend(inflater.feed(chunk))
    inflater.finish()
    return b"".join(pieces), inflater.sha256.hexdigest()


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
    """Decoded ids objects, the most recently used few. Keyed by the manifest's ids_sha256,
    so a period written again is never answered from its old ids."""

    def __init__(self, periods_max: int = ARCHIVE_IDS_CACHE_PERIODS) -> None:
        self._periods_max = periods_max
        self._ids: OrderedDict[tuple[int, int, str], dict[str, IdEntry]] = OrderedDict()

    async def ids(
        self, js: JetStreamContext, store: ObjectStore, manifest: Manifest
    ) -> dict[str, IdEntry]:
        key = (manifest.partition, manifest.period, manifest.ids_sha256)
        if key in self._ids:
            self._ids.move_to_end(key)
            return self._ids[key]
        name = ids_object(manifest.partition, manifest.period)
        data, sha256 = await ids_json(js, store, name)
        if sha256 != manifest.ids_sha256:
            raise ArchiveCorrupt(f"{name}: its SHA-256 differs from the manifest's ids_sha256")
        ids = decode_ids(data, name)
        self._ids[key] = ids
        while len(self._ids) > self._periods_max:
            self._ids.popitem(last=False)
        return ids

    def clear(self) -> None:
        self._ids.clear()
