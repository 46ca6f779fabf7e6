"""A period's key filter on a real nats-server (issue 12): a lookup of a key the period does not
hold reads no ids shard, a key it holds still gets its original outcome, a period archived
before filters existed is read through its shard as before, and a tampered filter is caught
by its digest or by the verifier's rebuild (what `audit --full` runs)."""

from __future__ import annotations

import msgspec
import pytest
from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    find_record,
    find_transfer,
    verify_period,
    write_period,
)
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.archive_format import ArchivedMessage, filter_object, manifest_object
from eventsource.core.archive_manifest import decode_manifest, sha256_hex
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.subjects import state_subject
from tests.integration.archive_ledger import (
    event,
    flip_byte,
    no_extras,
    rechained,
    rewrite_object,
    transfer_of,
)

RECORDS = 3000  # three ids shards


def keys_of(count: int) -> list[str]:
    return [f"bank-a.out.r{i}" for i in range(count)]


async def archived_records(nc: Client, count: int = RECORDS):
    """`count` settled records (untimed ids: every lookup reaches the period) as period 0."""
    messages = [
        ArchivedMessage(
            seq=i + 1,
            time_ms=1_700_000_000_000,
            subject=state_subject(0, key),
            payload=event(key.rsplit(".", 1)[1], True),
        )
        for i, key in enumerate(keys_of(count))
    ]
    return await write_period(
        nc, 0, 0, messages, ZERO_CHAIN, first_seq=1, end_seq=count + 1, extras=no_extras
    )


def misses(count: int) -> list[str]:
    """Keys the period does not hold and its filter rejects (the filter is deterministic, so
    the same keys every run: a false positive would read a shard, which is allowed)."""
    key_filter = KeyFilter.of(keys_of(RECORDS))
    candidates = (f"bank-a.out.x{i}" for i in range(10 * count))
    chosen = [key for key in candidates if not key_filter.may_hold(key)][:count]
    assert len(chosen) == count
    return chosen


def fresh_caches() -> None:
    archive_store.ids_cache.clear()
    archive_store.filter_cache.clear()


async def test_a_miss_reads_no_shard_and_a_hit_still_answers_its_outcome(nc: Client):
    manifest = await archived_records(nc)
    assert manifest.ids_shards == 3 and manifest.filter_sha256 is not None
    fresh_caches()
    shards, filters = archive_store.ids_cache, archive_store.filter_cache
    reads, filter_reads, rejected = shards.reads, filters.reads, filters.rejected

    for key in misses(200):
        assert await find_record(nc, 0, key, None) is None
    assert shards.reads == reads  # no ids shard read for any of them
    assert filters.reads == filter_reads + 1  # the period's filter, loaded once
    assert filters.rejected == rejected + 200

    digest = transfer_of("r42").digest
    assert await find_transfer(nc, 0, "bank-a.out.r42", None) == (0, digest, "OK")
    assert await find_record(nc, 0, "bank-a.out.r7", None) == event("r7", True)
    assert shards.reads > reads  # a hit reads the shard, as before
    assert filters.reads == filter_reads + 1
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest


async def test_a_period_archived_before_filters_is_read_through_its_shard(nc: Client):
    """A manifest without filter_sha256 (written before filters existed): every lookup that
    reaches the period reads its shard, and the period still verifies."""
    await archived_records(nc)
    await rewrite_object(
        nc,
        manifest_object(0, 0),
        lambda data: rechained(
            msgspec.json.encode(
                msgspec.structs.replace(decode_manifest(data, "m"), filter_sha256=None)
            )
        ),
    )
    fresh_caches()
    shards, filters = archive_store.ids_cache, archive_store.filter_cache
    reads, filter_reads = shards.reads, filters.reads
    assert await find_record(nc, 0, misses(1)[0], None) is None
    assert shards.reads == reads + 1
    assert await find_record(nc, 0, "bank-a.out.r42", None) == event("r42", True)
    assert filters.reads == filter_reads  # there is none to read
    old = await verify_period(nc, 0, 0, ZERO_CHAIN)
    assert old.filter_sha256 is None


async def test_a_changed_filter_fails_its_digest_in_lookups_and_verification(nc: Client):
    await archived_records(nc)
    await rewrite_object(nc, filter_object(0, 0), lambda data: flip_byte(data, 40))
    fresh_caches()
    with pytest.raises(ArchiveCorrupt, match="filter_sha256"):
        await find_record(nc, 0, "bank-a.out.r42", None)
    with pytest.raises(ArchiveCorrupt, match="filter_sha256"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)


async def test_a_filter_that_denies_an_archived_key_fails_verification(nc: Client):
    """Even with its digest and the chain made to match (a manifest consistent in itself), a
    filter that is not the filter of the period's keys is caught by the rebuild; the chain it
    needed is not the one the next period or the archive head holds."""
    original = await archived_records(nc)
    stored = KeyFilter.of(keys_of(RECORDS))
    bare = KeyFilter.sized([], hashes=stored.hashes, bits=stored.bits).encode()
    await rewrite_object(nc, filter_object(0, 0), lambda _: bare)
    await rewrite_object(
        nc,
        manifest_object(0, 0),
        lambda data: rechained(
            msgspec.json.encode(
                msgspec.structs.replace(decode_manifest(data, "m"), filter_sha256=sha256_hex(bare))
            )
        ),
    )
    fresh_caches()
    assert await find_record(nc, 0, "bank-a.out.r42", None) is None  # what it would cost
    with pytest.raises(ArchiveCorrupt, match="not the filter of its ids' keys"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)
    assert (await archive_store.read_manifest(nc, 0, 0)).chain != original.chain
