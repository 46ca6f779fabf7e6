"""Archived records found again on a real nats-server (issue 12): through the hour directory, in
the one ids shard a key belongs to, as the exact final event; records not final in a period
are not there, and carried copies create no money."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    find_record,
    find_transfer,
    read_manifest,
    verify_period,
    write_period,
)
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.core.archive_fold import CARRIED_HEADER
from eventsource.core.archive_format import ArchivedMessage, id_time_ms
from eventsource.core.archive_ids import UNTIMED, ids_shard_of
from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.subjects import state_subject
from tests.integration.archive_ledger import (
    archive,
    archived,
    event,
    funding,
    no_extras,
    provision,
    publish_funding,
    publish_transfers,
    stream_messages,
    transfer_of,
)

ULIDS = ["01JD3F6N7ZK8R2W4Y5X9B0C1QH", "01JD3F6N7ZK8R2W4Y5X9B0C1QJ", "01JD3G0000000000000000000A"]
RECORDS = 5000  # five shards of ARCHIVE_IDS_PER_SHARD


@pytest.fixture
async def nc(nats1: ClusterInfo) -> AsyncIterator[Client]:
    """A connection to a node with natsbank's ledger partition 0 provisioned, still empty."""
    client = await connect(nats1.url)
    await provision(client)
    yield client
    await client.close()


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
