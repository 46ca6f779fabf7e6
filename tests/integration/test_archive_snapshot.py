"""What the archiver adds to a period, on a real nats-server (issue 12): its snapshot comes back
exact and any changed byte of it is found; its findings are in the manifest and in the chain;
and the archive head's chain catches a rewrite of the newest period, which nothing else can."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.client import Client

from eventsource.adapters.archive_store import (
    ZERO_CHAIN,
    PeriodExtras,
    check_head,
    read_manifest,
    read_snapshot,
    verify_period,
    write_period,
)
from eventsource.core.archive_head import SnapshotEntry, decode_snapshot, encode_snapshot
from eventsource.core.errors import ArchiveCorrupt, ArchiveNotFound
from eventsource.core.limits import ARCHIVE_PROBLEMS_KEPT
from tests.integration.archive_ledger import (
    archive,
    event,
    flip_byte,
    in_gzip,
    ledger_range,
    no_extras,
    publish_transfers,
    rewrite_object,
    stream_messages,
)

ULIDS = ["01JD3F6N7ZK8R2W4Y5X9B0C1QH", "01JD3F6N7ZK8R2W4Y5X9B0C1QJ"]
SNAPSHOT_0 = "k0/p00000000.snapshot"
SNAPSHOT = encode_snapshot(
    [
        SnapshotEntry("bank-a.acct.alice", 1, b'{"type":"AccountOpened"}'),
        SnapshotEntry("bank-a.out.t9", 3, event("t9", False)),
    ]
)


def extras_of(snapshot: bytes = SNAPSHOT, problems: int = 0) -> PeriodExtras:
    return PeriodExtras(
        snapshot=snapshot,
        problems=[f"bank-a.out.t{i}: content changed (I3)" for i in range(problems)],
        settled={"EUR": 2100},
        confirmed={"EUR": 1050},
    )


async def test_extras_are_asked_once_after_the_last_message_and_kept(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    exhausted, calls = [], []

    async def source() -> AsyncIterator:
        async for msg in ledger_range(nc, 1, last + 1):
            yield msg
        exhausted.append(True)

    def extras() -> PeriodExtras:
        calls.append(bool(exhausted))
        return extras_of(problems=ARCHIVE_PROBLEMS_KEPT + 50)

    manifest = await write_period(
        nc, 0, 0, source(), ZERO_CHAIN, first_seq=1, end_seq=last + 1, extras=extras
    )
    assert calls == [True]  # once, and only when every message had gone through
    assert (manifest.settled, manifest.confirmed) == ({"EUR": 2100}, {"EUR": 1050})
    assert manifest.problem_count == ARCHIVE_PROBLEMS_KEPT + 50
    assert manifest.problems == extras_of(problems=ARCHIVE_PROBLEMS_KEPT).problems
    assert manifest.snapshot_sha256 == hashlib.sha256(SNAPSHOT).hexdigest()
    assert await read_manifest(nc, 0, 0) == manifest
    assert await verify_period(nc, 0, 0, ZERO_CHAIN) == manifest


async def test_the_snapshot_comes_back_exact_and_any_changed_byte_is_found(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    manifest = await write_period(
        nc,
        0,
        0,
        ledger_range(nc, 1, last + 1),
        ZERO_CHAIN,
        first_seq=1,
        end_seq=last + 1,
        extras=extras_of,
    )
    assert await read_snapshot(nc, 0, 0) == SNAPSHOT
    assert [e.key for e in decode_snapshot(await read_snapshot(nc, 0, 0))] == [
        "bank-a.acct.alice",
        "bank-a.out.t9",
    ]
    assert await check_head(nc, 0, 0, manifest.chain) == manifest

    await rewrite_object(nc, SNAPSHOT_0, in_gzip(lambda data: flip_byte(data, 20)))
    for check in (
        verify_period(nc, 0, 0, ZERO_CHAIN),
        check_head(nc, 0, 0, manifest.chain),
        read_snapshot(nc, 0, 0),
    ):
        with pytest.raises(ArchiveCorrupt, match=r"p00000000\.snapshot: .*snapshot_sha256"):
            await check
    await rewrite_object(nc, SNAPSHOT_0, lambda gz: flip_byte(gz, len(gz) // 2))
    with pytest.raises(ArchiveCorrupt, match=r"p00000000\.snapshot"):
        await check_head(nc, 0, 0, manifest.chain)


async def test_the_head_catches_a_rewrite_of_the_newest_period(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    head = (await archive(nc, 0, 1, last + 1, ZERO_CHAIN)).chain
    assert (await check_head(nc, 0, 0, head)).chain == head
    with pytest.raises(ArchiveCorrupt, match="is not the head's"):
        await check_head(nc, 0, 0, "1" * 64)
    with pytest.raises(ArchiveNotFound):
        await check_head(nc, 0, 1, head)
    with pytest.raises(ArchiveNotFound):
        await read_snapshot(nc, 0, 1)

    # The newest period replaced by content consistent in itself: only the head tells.
    original = await stream_messages(nc, 1, last + 1)
    forged = [msgspec.structs.replace(original[0], payload=b"{}"), *original[1:]]
    await write_period(
        nc, 0, 0, forged, ZERO_CHAIN, first_seq=1, end_seq=last + 1, extras=no_extras
    )
    assert await verify_period(nc, 0, 0, ZERO_CHAIN)  # alone, it holds together
    with pytest.raises(ArchiveCorrupt, match="is not the head's"):
        await check_head(nc, 0, 0, head)


async def test_a_manifest_whose_figures_were_edited_fails_the_head_check(nc: Client):
    last = await publish_transfers(nc, ULIDS)
    manifest = await write_period(
        nc,
        0,
        0,
        ledger_range(nc, 1, last + 1),
        ZERO_CHAIN,
        first_seq=1,
        end_seq=last + 1,
        extras=extras_of,
    )
    name = "k0/p00000000.manifest"
    await rewrite_object(nc, name, lambda data: data.replace(b'"EUR":2100', b'"EUR":2000'))
    with pytest.raises(ArchiveCorrupt, match="chain does not match its own fields"):
        await check_head(nc, 0, 0, manifest.chain)


async def test_extras_that_fail_or_are_no_extras_leave_no_manifest(nc: Client):
    last = await publish_transfers(nc, ULIDS[:1])

    def failing() -> PeriodExtras:
        raise RuntimeError("the fold failed")

    with pytest.raises(RuntimeError):
        await write_period(
            nc, 0, 0, ledger_range(nc, 1, last + 1), ZERO_CHAIN, first_seq=1, end_seq=last + 1,
            extras=failing,
        )  # fmt: skip
    with pytest.raises(TypeError, match="PeriodExtras"):
        await write_period(
            nc, 0, 0, ledger_range(nc, 1, last + 1), ZERO_CHAIN, first_seq=1, end_seq=last + 1,
            extras=lambda: extras_of(snapshot="[]"),  # type: ignore[arg-type]
        )  # fmt: skip
    assert await read_manifest(nc, 0, 0) is None
