"""Verifying an archived period against its manifest by reading every object again: the events
re-derive the range, the count, the ids shards and the funding. `archive_store.py` is the API."""

from __future__ import annotations

from nats.js.client import JetStreamContext
from nats.js.object_store import ObjectStore

from eventsource.adapters.archive_filters import filter_of
from eventsource.adapters.archive_reader import ids_shard_json, period_messages, snapshot_json
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.archive_ids import encode_ids
from eventsource.core.archive_manifest import Manifest
from eventsource.core.archive_period import PeriodBuilder
from eventsource.core.errors import ArchiveCorrupt


async def verify_objects(
    js: JetStreamContext, store: ObjectStore, manifest: Manifest, prev_chain: str
) -> None:
    """ArchiveCorrupt naming what differs, if anything the manifest says is not what its
    objects hold (the key filter included), or if it does not follow `prev_chain`. The
    manifest is taken as read by `manifest_of`: consistent in itself (its chain matches its
    fields)."""
    partition, period = manifest.partition, manifest.period
    where = f"archive of partition {partition} period {period}"
    if manifest.prev_chain != prev_chain:
        raise ArchiveCorrupt(f"{where}: prev_chain {manifest.prev_chain} is not {prev_chain}")
    builder = PeriodBuilder(partition, period, manifest.first_seq, manifest.end_seq)
    async for message in period_messages(js, store, manifest):
        builder.add(message)
    shards = builder.ids_shards()
    if len(shards) != manifest.ids_shards:
        raise ArchiveCorrupt(
            f"{where}: ids_shards {manifest.ids_shards}, where its events make {len(shards)}"
        )
    for shard, ids in enumerate(shards):
        if await ids_shard_json(js, store, manifest, shard) != encode_ids(ids):
            raise ArchiveCorrupt(f"{where}: ids shard {shard} is not the ids of the events")
    if manifest.filter_sha256 is not None:  # a period archived before filters has none
        await _verify_filter(js, store, manifest, builder, where)
    await snapshot_json(js, store, manifest, keep=False)
    rebuilt = builder.manifest(
        events_sha256=manifest.events_sha256,
        ids_shard_sha256=manifest.ids_shard_sha256,
        snapshot_sha256=manifest.snapshot_sha256,
        figures=manifest.fold_figures(),
        prev_chain=prev_chain,
        archived_at_ms=manifest.archived_at_ms,
        ids_below_ms=manifest.ids_below_ms,  # the chain covers it; inconsistencies() bounds it
        filter_sha256=manifest.filter_sha256,  # checked above against the events' keys
    )
    differing = [
        f for f in Manifest.__struct_fields__ if getattr(rebuilt, f) != getattr(manifest, f)
    ]
    if differing:
        raise ArchiveCorrupt(f"{where}: manifest fields differ from the events: {differing}")


async def _verify_filter(
    js: JetStreamContext, store: ObjectStore, manifest: Manifest, builder: PeriodBuilder, where: str
) -> None:
    """The stored filter (checked against its digest) must be the filter of the ids' keys,
    rebuilt with the parameters it states: a filter that missed a key would make a lookup
    deny an archived transfer."""
    stored = await filter_of(js, store, manifest)
    rebuilt = KeyFilter.sized(builder.ids(), hashes=stored.hashes, bits=stored.bits)
    if rebuilt != stored:
        raise ArchiveCorrupt(f"{where}: its key filter is not the filter of its ids' keys")
