"""The ledger archive on a real nats-server (issue 12): a period read back identical and
verified, any changed byte found, a chain that breaks where a period was replaced, transfers
found through the hour directory, and no manifest for a write that did not finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_reader import directory_periods
from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    add_to_directory,
    find_transfer,
    read_manifest,
    verify_chain,
    verify_period,
    write_period,
)
from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from eventsource.core.archive_format import id_time_ms
from eventsource.core.archive_ids import hour_bucket
from eventsource.core.errors import ArchiveCorrupt, ArchiveError, ArchiveNotFound, PeriodIncomplete
from eventsource.core.limits import ARCHIVE_BUCKET
from tests.integration.archive_ledger import (
    STREAM,
    archive,
    archived,
    flip_byte,
    in_gzip,
    ledger_range,
    no_extras,
    publish_funding,
    publish_noise,
    publish_transfers,
    rechained,
    rewrite_object,
    stream_messages,
)

ULIDS = ["01JD3F6N7ZK8R2W4Y5X9B0C1QH", "01JD3F6N7ZK8R2W4Y5X9B0C1QJ", "01JD3G0000000000000000000A"]
EVENTS_0 = "k0/p00000000.events"


async def test_a_period_of_the_ledger_reads_back_identical_and_verifies(nc: Client):
    await publish_funding(nc, "100.00")
    last = await publish_transfers(nc, [*ULIDS, "t1"])
    await publish_transfers(nc, ["01JD3H0000000000000000000B"], settle=False)  # still live
    await publish_funding(nc, "0.50")

    manifest = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)

    expected = await stream_messages(nc, 1, last + 1)
    assert await archived(nc, 0) == expected  # payloads, subjects, times, kept headers
    assert any(m.payload.startswith(b"\x00\xff") for m in expected)  # not JSON: base64
    assert expected[1].headers == {} and expected[2].headers == {"Nats-Msg-Id": f"m-{ULIDS[0]}"}
    assert (manifest.first_seq, manifest.end_seq, manifest.messages) == (1, last + 1, last)
    assert manifest.funded == {"EUR": 100_00}  # the second funding is after the period
    assert manifest.id_time_min_ms == id_time_ms(ULIDS[0])
    assert manifest.id_time_max_ms == id_time_ms(ULIDS[2])
    assert await read_manifest(nc, 0, 0) == manifest
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest
    status = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    assert (await status.status()).replicas == 1  # as the ledger


async def test_a_period_of_many_chunks_spilled_to_disk_reads_back_identical(
    nc: Client, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(archive_store, "ARCHIVE_SPOOL_MEMORY_BYTES", 64 * 1024)
    last = await publish_noise(nc, 1500, 400)
    manifest = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    assert (await store.get_info(EVENTS_0)).chunks >= 4
    assert await archived(nc, 0) == await stream_messages(nc, 1, last + 1)
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest


async def test_messages_read_by_get_archive_as_those_read_by_a_consumer(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    js = nc.jetstream()
    gets = [await js.get_msg(STREAM, seq) for seq in range(1, last + 1)]
    by_get = await write_period(
        nc, 0, 0, gets, ZERO_CHAIN, first_seq=1, end_seq=last + 1, extras=no_extras
    )
    by_consumer = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    assert by_get.chain == by_consumer.chain


async def test_a_missing_chunk_is_corrupt_rather_than_a_read_that_waits_for_ever(nc: Client):
    last = await publish_noise(nc, 600, 400)
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    js = nc.jetstream()
    store = await js.object_store(ARCHIVE_BUCKET)
    info = await store.get_info(EVENTS_0)
    chunks = f"$O.{ARCHIVE_BUCKET}.C.{info.nuid}"
    second = await js.get_msg(f"OBJ_{ARCHIVE_BUCKET}", seq=1, subject=chunks, next=True)
    second = await js.get_msg(
        f"OBJ_{ARCHIVE_BUCKET}", seq=second.seq + 1, subject=chunks, next=True
    )
    await js.delete_msg(f"OBJ_{ARCHIVE_BUCKET}", second.seq)
    with pytest.raises(ArchiveCorrupt, match=r"chunk 2 of \d+ is missing"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)
    # No chunk at all: nats-py's own get waits for ever on this one.
    await js.purge_stream(f"OBJ_{ARCHIVE_BUCKET}", subject=chunks)
    with pytest.raises(ArchiveCorrupt, match=r"chunk 1 of \d+ is missing"):
        await archived(nc, 0)


async def test_writing_the_same_period_again_replaces_it_with_the_same_chain(nc: Client):
    last = await publish_transfers(nc, ULIDS[:1])
    first = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    again = await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    assert again.chain == first.chain
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == again


async def test_a_changed_byte_of_the_events_fails_verification(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)

    await rewrite_object(nc, EVENTS_0, in_gzip(lambda ndjson: flip_byte(ndjson, 40)))
    with pytest.raises(ArchiveCorrupt, match=r"events_sha256|not an archived message"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)
    with pytest.raises(ArchiveCorrupt):
        await archived(nc, 0)

    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)  # repaired
    await rewrite_object(nc, EVENTS_0, lambda gz: flip_byte(gz, len(gz) // 2))
    with pytest.raises(ArchiveCorrupt, match=r"p00000000\.events"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)


async def test_a_manifest_that_lies_about_the_funding_fails_verification(nc: Client):
    last = await publish_funding(nc, "5.00")
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    name = "k0/p00000000.manifest"
    await rewrite_object(nc, name, lambda data: data.replace(b'"EUR":500', b'"EUR":900'))
    with pytest.raises(ArchiveCorrupt, match="chain does not match its own fields"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)
    await rewrite_object(nc, name, rechained)  # a forger who also recomputes the chain
    with pytest.raises(ArchiveCorrupt, match="funded"):
        await verify_period(nc, 0, 0, ZERO_CHAIN)


async def test_a_chain_of_three_periods_verifies_and_breaks_where_one_was_replaced(nc: Client):
    ends = [
        await publish_transfers(nc, [f"t{period}-{i}" for i in range(3)]) for period in range(3)
    ]
    prev, first = ZERO_CHAIN, 1
    for period, last in enumerate(ends):
        prev = (await archive(nc, period, first, last + 1, prev)).chain
        first = last + 1
    manifests = await verify_chain(nc, 0, 3)
    assert [m.prev_chain for m in manifests[1:]] == [m.chain for m in manifests[:2]]

    # Period 1 replaced by other content that is consistent in itself.
    original = await stream_messages(nc, ends[0] + 1, ends[1] + 1)
    forged = [msgspec.structs.replace(original[0], payload=b"{}"), *original[1:]]
    await write_period(
        nc,
        0,
        1,
        forged,
        manifests[0].chain,
        first_seq=ends[0] + 1,
        end_seq=ends[1] + 1,
        extras=no_extras,
    )
    replaced = await verify_period(nc, 0, 1, manifests[0].chain)  # alone, it holds together
    with pytest.raises(ArchiveCorrupt, match="prev_chain"):
        await verify_period(nc, 0, 2, replaced.chain)
    with pytest.raises(ArchiveCorrupt, match="period 2: prev_chain"):
        await verify_chain(nc, 0, 3)


async def test_a_directory_entry_read_while_the_archiver_rewrites_it_reads_whole(
    nc: Client, nats1: ClusterInfo
):
    last = await publish_transfers(nc, ULIDS[:1])
    await archive(nc, 0, 1, last + 1, ZERO_CHAIN)
    hour = hour_bucket(id_time_ms(ULIDS[0]))
    reader = await connect(nats1.url)  # a status lookup elsewhere
    store = await reader.jetstream().object_store(ARCHIVE_BUCKET)
    updates_done = asyncio.Event()

    async def archiver() -> None:
        for period in range(1, 100):  # each put of the entry purges the one before
            await add_to_directory(nc, 0, period, {hour})
        updates_done.set()

    async def lookups() -> int:
        reads = 0
        while not updates_done.is_set():
            assert 0 in await directory_periods(reader.jetstream(), store, 0, hour)
            reads += 1
        return reads

    _, reads = await asyncio.gather(archiver(), lookups())
    await reader.close()
    assert reads > 0


async def test_no_bucket_means_nothing_archived_and_nothing_created(nc: Client):
    assert await read_manifest(nc, 0, 0) is None
    assert await find_transfer(nc, 0, "bank-a.out.t1", None) is None
    with pytest.raises(ArchiveNotFound):
        await verify_period(nc, 0, 0, ZERO_CHAIN)
    names = [info.config.name for info in await nc.jetstream().streams_info()]
    assert f"OBJ_{ARCHIVE_BUCKET}" not in names


async def test_messages_that_do_not_cover_the_period_write_nothing(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    with pytest.raises(PeriodIncomplete):
        await archive(nc, 0, 1, last + 5, ZERO_CHAIN)  # the ledger ends before end_seq
    with pytest.raises(ArchiveError, match="funded"):
        messages = ledger_range(nc, 1, last + 1)
        await write_period(
            nc,
            0,
            0,
            messages,
            ZERO_CHAIN,
            {"EUR": 1},
            first_seq=1,
            end_seq=last + 1,
            extras=no_extras,
        )
    assert await read_manifest(nc, 0, 0) is None


async def test_an_interrupted_write_leaves_no_manifest(nc: Client, monkeypatch: pytest.MonkeyPatch):
    last = await publish_transfers(nc, ULIDS[:2])
    chain = (await archive(nc, 0, 1, last + 1, ZERO_CHAIN)).chain
    later = await publish_transfers(nc, ULIDS[2:])

    async def crash(*_args) -> None:
        raise KeyboardInterrupt  # the process dies between the objects and the manifest

    monkeypatch.setattr(archive_store, "commit_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        await archive(nc, 1, last + 1, later + 1, chain)  # a first write of period 1
    with pytest.raises(KeyboardInterrupt):
        await archive(nc, 0, 1, last + 1, ZERO_CHAIN)  # a rewrite of period 0

    store = await nc.jetstream().object_store(ARCHIVE_BUCKET)
    assert (await store.get_info(EVENTS_0)).size > 0  # the events were stored...
    assert await read_manifest(nc, 0, 0) is None  # ...but nothing counts as archived
    assert await read_manifest(nc, 0, 1) is None
    with pytest.raises(ArchiveNotFound):
        await verify_period(nc, 0, 1, chain)
    with pytest.raises(ArchiveNotFound):
        await archived(nc, 1)
    for transfer_id in ULIDS:
        key = f"bank-a.out.{transfer_id}"
        assert await find_transfer(nc, 0, key, id_time_ms(transfer_id)) is None


async def test_a_period_must_continue_the_one_before(nc: Client):
    last = await publish_transfers(nc, ULIDS[:1])
    later = await publish_transfers(nc, ULIDS[1:2])
    with pytest.raises(ArchiveError, match="follows nothing"):
        await archive(nc, 0, 1, last + 1, "1" * 64)
    with pytest.raises(ArchiveError, match="period 0: it is not archived"):
        await archive(nc, 1, last + 1, later + 1, ZERO_CHAIN)
    chain = (await archive(nc, 0, 1, last + 1, ZERO_CHAIN)).chain
    with pytest.raises(ArchiveError, match="must start at"):
        await archive(nc, 1, last + 1, later + 1, ZERO_CHAIN)  # another chain
    with pytest.raises(ArchiveError, match="must start at"):
        await archive(nc, 1, last + 2, later + 1, chain)  # a gap between the periods
    assert await read_manifest(nc, 0, 1) is None
    await archive(nc, 1, last + 1, later + 1, chain)
    assert len(await verify_chain(nc, 0, 2)) == 2


async def test_a_source_that_fails_midway_leaves_no_manifest(nc: Client):
    last = await publish_transfers(nc, ULIDS)

    async def failing() -> AsyncIterator:
        async for msg in ledger_range(nc, 1, last + 1):
            if msg.seq == 4:
                raise ConnectionError("ledger read failed")
            yield msg

    with pytest.raises(ConnectionError):
        await write_period(
            nc, 0, 0, failing(), ZERO_CHAIN, first_seq=1, end_seq=last + 1, extras=no_extras
        )
    assert await read_manifest(nc, 0, 0) is None
