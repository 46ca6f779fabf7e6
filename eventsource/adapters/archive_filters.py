"""The periods' key filters in the archive bucket: read against the manifest's digest, and
kept decoded for lookups, a bounded number of bytes of them. `archive_store.py` is the API;
the filter itself is `core/archive_filter.py`."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from eventsource.adapters.object_store_io import read_small
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.archive_format import filter_object
from eventsource.core.archive_manifest import Manifest, sha256_hex
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import (
    ARCHIVE_BUCKET,
    ARCHIVE_FILTER_BYTES_MAX,
    ARCHIVE_FILTER_CACHE_BYTES,
)


async def filter_of(js: JetStreamContext, store: ObjectStore, manifest: Manifest) -> KeyFilter:
    """The period's filter, checked against the manifest's filter_sha256 (which it must have):
    ArchiveCorrupt if the object is missing, differs or is not a filter."""
    name = filter_object(manifest.partition, manifest.period)
    data = await read_small(js, store, ARCHIVE_BUCKET, name, ARCHIVE_FILTER_BYTES_MAX)
    if data is None:
        raise ArchiveCorrupt(f"object {name} is missing")
    if sha256_hex(data) != manifest.filter_sha256:
        raise ArchiveCorrupt(f"{name}: its SHA-256 differs from the manifest's filter_sha256")
    return KeyFilter.decode(data, name)


class FilterCache:
    """Decoded key filters, the most recently used ones up to `bytes_max` in all. Keyed by
    the filter's digest in the manifest, so a period written again is never answered from its
    old filter. `reads` counts the filters read from the bucket, `rejected` the lookups a
    filter answered "definitely not" (they read no ids shard)."""

    def __init__(self, bytes_max: int = ARCHIVE_FILTER_CACHE_BYTES) -> None:
        self._bytes_max = bytes_max
        self._filters: OrderedDict[tuple[int, int, str], KeyFilter] = OrderedDict()
        self._bytes = 0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.reads = 0
        self.rejected = 0

    async def may_hold(
        self, js: JetStreamContext, store: ObjectStore, manifest: Manifest, key: str
    ) -> bool:
        """False only if the period certainly does not hold `key`. A period archived before
        filters existed has none: True, its shard decides."""
        if manifest.filter_sha256 is None:
            return True
        cache_key = (manifest.partition, manifest.period, manifest.filter_sha256)
        key_filter = self._filters.get(cache_key)
        if key_filter is not None:
            self._filters.move_to_end(cache_key)
        else:
            async with self._loading():  # lookups at once of one period load its filter once
                key_filter = self._filters.get(cache_key)
                if key_filter is None:
                    self.reads += 1
                    key_filter = await filter_of(js, store, manifest)
                    self._keep(cache_key, key_filter)
        if key_filter.may_hold(key):
            return True
        self.rejected += 1
        return False

    def _loading(self) -> asyncio.Lock:
        """One lock per event loop (an asyncio.Lock belongs to the loop it first waited in)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _keep(self, cache_key: tuple[int, int, str], key_filter: KeyFilter) -> None:
        self._filters[cache_key] = key_filter
        self._bytes += key_filter.size_bytes
        while self._bytes > self._bytes_max and len(self._filters) > 1:
            _, dropped = self._filters.popitem(last=False)
            self._bytes -= dropped.size_bytes

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._filters)

    def clear(self) -> None:
        self._filters.clear()
        self._bytes = 0
