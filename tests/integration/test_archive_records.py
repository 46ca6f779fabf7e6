"""Archived records found again on a real nats-server (issue 12): through the hour directory, in
the one ids shard a key belongs to, as the exact final event; records not final in a period
are not there, and carried copies create no money."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from ulid import ULID

from eventsource.adapters import archive_store
from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    find_record,
    find_transfer,
    read_manifest,
    verify_period,
    write_period,
)
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.archive_format import ArchivedMessage, id_time_ms, ids_object
from eventsource.core.archive_ids import UNTIMED, ids_shard_of
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.subjects import state_subject
from tests.integration.archive_ledger import (
    archive,
    archived,
    event,
    funding,
    no_extras,
    publish_funding,
    publish_transfers,
    stream_messages,
    transfer_of,
)

ULIDS = ["01JD3F6N7ZK8R2W4Y5X9B0C1QH", "01JD3F6N7ZK8R2W4Y5X9B0C1QJ", "01JD3G0000000000000000000A"]
RECORDS = 5000  # five shards of ARCHIVE_IDS_PER_SHARD


async def test_find_transfer_finds_archived_ids_through_the_hour_directory(nc: Client):
    last = await publish_transfers(nc, [*ULIDS, "t1"])
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    later = await publish_transfers(nc, ["01JD3F6N7ZK8R2W4Y5X9B0C1QK"])
    await archive(nc, 1, last + 1, later + 1, (await read_manifest(nc, 0, 0)).chain)

    digest = transfer_of(ULIDS[1]).digest
    key = f"bank-a.out.{ULIDS[1]}"
    assert await find_transfer(nc, 0, key, id_time_ms(ULIDS[1])) == (0, digest, "OK")
    untimed = await find_transfer(nc, 0, "bank-a.out.t1", None)
    assert untimed == (0, transfer_of("t1").digest, "OK")
    newer = "01JD3F6N7ZK8R2W4Y5X9B0C1QK"
    assert (await find_transfer(nc, 0, f"bank-a.out.{newer}", id_time_ms(newer)))[0] == 1
    assert (
        await find_transfer(nc, 0, "bank-a.out.01JD3F6N7ZK8R2W4Y5X9B0C1QZ", id_time_ms(ULIDS[0]))
        is None
    )
    assert await find_transfer(nc, 0, "bank-a.out.unknown", None) is None

    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    assert (await store.get(f"k0/ids-by-hour/{UNTIMED}")).data == b"[0]"
    assert (await store.get("k0/ids-by-hour/2024112000")).data == b"[0,1]"


async def test_find_record_gives_the_exact_final_event_of_final_records_only(nc: Client):
    last = await publish_transfers(nc, ULIDS[:2])
    pending = "01JD3H0000000000000000000B"
    last = await publish_transfers(nc, [pending], settle=False)  # its latest event: reserved
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)

    for transfer_id in ULIDS[:2]:
        key = f"bank-a.out.{transfer_id}"
        assert await find_record(nc, 0, key, id_time_ms(transfer_id)) == event(transfer_id, True)
    assert await find_record(nc, 0, f"bank-a.out.{pending}", id_time_ms(pending)) is None
    assert await find_transfer(nc, 0, f"bank-a.out.{pending}", id_time_ms(pending)) is None


def final_records(count: int) -> list[ArchivedMessage]:
    """`count` settled records, one message each, from sequence 1 (the archive takes them as
    they are: no need to publish them)."""
    return [
        ArchivedMessage(
            seq=i + 1,
            time_ms=1_700_000_000_000,
            subject=state_subject(0, f"bank-a.out.r{i}"),
            payload=event(f"r{i}", True),
        )
        for i in range(count)
    ]


async def test_five_thousand_records_go_to_five_shards_and_a_lookup_reads_one(nc: Client):
    messages = final_records(RECORDS)
    manifest = await write_period(
        nc, 0, 0, messages, ZERO_CHAIN, first_seq=1, end_seq=RECORDS + 1, extras=no_extras
    )
    assert manifest.ids_shards == 5 and len(manifest.ids_shard_sha256) == 5
    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    sizes = [(await store.get_info(f"k0/p00000000.ids.{n:04d}")).size for n in range(5)]
    assert all(sizes)

    cache = archive_store.ids_cache
    cache.clear()
    reads = cache.reads
    assert await find_record(nc, 0, "bank-a.out.r42", None) == event("r42", True)
    assert (cache.reads - reads, len(cache)) == (1, 1)  # one shard of five read
    shard = ids_shard_of("bank-a.out.r42", 5)
    same = next(
        i for i in range(RECORDS) if i != 42 and ids_shard_of(f"bank-a.out.r{i}", 5) == shard
    )
    other = next(i for i in range(RECORDS) if ids_shard_of(f"bank-a.out.r{i}", 5) != shard)
    assert await find_record(nc, 0, f"bank-a.out.r{same}", None) == event(f"r{same}", True)
    assert cache.reads - reads == 1  # the same shard, from the cache
    assert await find_record(nc, 0, f"bank-a.out.r{other}", None) == event(f"r{other}", True)
    assert (cache.reads - reads, len(cache)) == (2, 2)
    assert await find_record(nc, 0, "bank-a.out.r5000", None) is None
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest


async def test_a_carried_copy_is_archived_as_such_and_funds_nothing(nc: Client):
    first = await publish_funding(nc, "5.00")
    subject = state_subject(0, "bank-a.acct.alice")
    headers = {"Nats-Expected-Last-Subject-Sequence": str(first), CARRIED_HEADER: str(first)}
    last = (await nc.jetstream().publish(subject, funding("5.00"), headers=headers)).seq

    manifest = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    assert manifest.funded == {"EUR": 500}  # not 1000: the copy was counted where it began
    copy = (await archived(nc, 0))[-1]
    assert copy.headers == {CARRIED_HEADER: str(first)}
    assert await archived(nc, 0) == await stream_messages(nc, 1, last + 1)
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest


def records_at(first_seq: int, time_ms: int, count: int) -> tuple[list[ArchivedMessage], list]:
    """`count` settled records whose ids' time is `time_ms`, from sequence `first_seq`."""
    ids = [str(ULID.from_timestamp(time_ms / 1000)) for _ in range(count)]
    messages = [
        ArchivedMessage(
            seq=first_seq + i,
            time_ms=time_ms,
            subject=state_subject(0, f"bank-a.out.{transfer_id}"),
            payload=event(transfer_id, True),
        )
        for i, transfer_id in enumerate(ids)
    ]
    return messages, ids


async def test_a_lookup_stops_at_the_first_period_below_the_ids_time(nc: Client):
    """Small periods must not make a miss read them all: a period's `ids_below_ms` says that
    no id at or after it is in that period or an earlier one, and its id time range which
    shards are worth reading."""
    t0 = 1_700_000_000_000
    older, older_ids = records_at(1, t0, 3)
    first = await write_period(
        nc, 0, 0, older, ZERO_CHAIN, first_seq=1, end_seq=4, extras=no_extras,
        ids_below_ms=t0 + 1_000,
    )  # fmt: skip
    newer, newer_ids = records_at(4, t0 + 5_000, 3)
    await write_period(
        nc, 0, 1, newer, first.chain, first_seq=4, end_seq=7, extras=no_extras,
        ids_below_ms=t0 + 6_000,
    )  # fmt: skip
    key = f"bank-a.out.{older_ids[0]}"
    assert await find_record(nc, 0, key, t0) == event(older_ids[0], True)

    # Period 0's ids shard removed: a lookup that read it would raise ArchiveCorrupt.
    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    await store.delete(ids_object(0, 0, 0))
    cache = archive_store.ids_cache
    cache.clear()
    reads = cache.reads
    recent = str(ULID.from_timestamp((t0 + 9_000) / 1000))
    assert await find_record(nc, 0, f"bank-a.out.{recent}", t0 + 9_000) is None
    assert cache.reads == reads  # above every period's bound: no shard read at all
    key = f"bank-a.out.{newer_ids[1]}"
    assert await find_record(nc, 0, key, t0 + 5_000) == event(newer_ids[1], True)
    missing = str(ULID.from_timestamp((t0 + 5_000) / 1000))
    assert await find_record(nc, 0, f"bank-a.out.{missing}", t0 + 5_000) is None
    assert cache.reads == reads + 1  # period 1's shard; period 0's manifest says it cannot
    with pytest.raises(ArchiveCorrupt):  # the shard is indeed gone: an id period 0 may hold
        await find_record(nc, 0, key.replace(newer_ids[1], older_ids[1]), t0)
