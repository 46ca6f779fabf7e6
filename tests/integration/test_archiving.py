"""Bounded history on a real server (issue 12): final transfers older than the live horizon
leave the live ledger for the archive, which still answers for them. A duplicate of an archived
transfer gets its original outcome, never a second application; an old id nobody knows is
refused ID_EXPIRED; a transfer still in flight past the horizon stays live and finishes; the
audit holds across live and archive (I1-I5, I7)."""

from __future__ import annotations

import asyncio

import pytest

from eventsource.adapters import archive_store
from eventsource.adapters.archive_filters import filter_of
from eventsource.adapters.archive_meta import StreamLease, meta_bucket
from eventsource.adapters.archive_stream import stream_state
from eventsource.adapters.topology import Topology
from eventsource.core.archive_filter import KeyFilter
from eventsource.core.errors import RejectionCause
from eventsource.core.limits import ARCHIVE_BUCKET
from eventsource.core.model import Outcome
from eventsource.core.subjects import (
    incoming_key,
    ledger_stream,
    outgoing_key,
    partition_of,
)
from eventsource.services.archiver import RunReport, archive_once
from tests.integration.archiving import AGE_S, HISTORY, is_live, new_id
from tests.integration.live_bank import MODES, LiveBank, live_bank, transfer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=MODES)
async def bank(nats1, request) -> LiveBank:
    """Both transports: core mode's protocol messages are not in the ledger, its records are."""
    async with live_bank(nats1, mode=request.param, topology=Topology(history=HISTORY)) as bank:
        yield bank


async def archive_all(bank: LiveBank) -> list[RunReport]:
    """Every partition archived as far as it goes now, as `natsbank archive run --once` does."""
    kv = await meta_bucket(bank.nc)
    reports = []
    for k in range(bank.partitions):
        lease = StreamLease(kv, ledger_stream(k))
        assert await lease.take()
        try:
            while (
                report := await archive_once(bank.nc, k, bank.history, lease)
            ).period is not None:
                reports.append(report)
        finally:
            await lease.release()
    return reports


async def live_subjects(bank: LiveBank) -> int:
    states = [await stream_state(bank.nc, ledger_stream(k)) for k in range(bank.partitions)]
    return sum(s.get("num_subjects", 0) for s in states)


async def test_old_final_transfers_leave_the_live_ledger_and_the_archive_answers(bank):
    bank.start_all()
    ids = [new_id() for _ in range(12)]
    await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "1.00") for i in ids))
    assert len(await bank.wait("alpha", ids)) == len(ids)
    before = await live_subjects(bank)
    await asyncio.sleep(AGE_S)
    reports = await archive_all(bank)
    assert reports and sum(r.messages for r in reports) > 0
    after = await live_subjects(bank)
    assert after < before - 2 * len(ids), (before, after)  # both records of each transfer left
    assert not await is_live(bank, "alpha", ids[0])
    record = await bank.ledger.record("alpha", ids[0])  # answered by the archive
    assert record is not None and record.state.outcome is Outcome.OK and record.sequence == 0
    report = await bank.audit()
    assert report.ok, report.violations

    # A duplicate of an archived transfer: its original outcome, and nothing applied again.
    balance = {a.account: a.balance for a in await bank.ledger.accounts("beta")}
    await bank.submit(transfer(ids[0], "alpha/a1", "beta/b1", "1.00"))
    assert (await bank.wait("alpha", [ids[0]]))[ids[0]].outcome is Outcome.OK
    await bank.quiet()
    assert not await is_live(bank, "alpha", ids[0]), "the duplicate was recorded anew"
    assert {a.account: a.balance for a in await bank.ledger.accounts("beta")} == balance

    # An id older than the horizon that nobody ever saw: refused, the client makes a new one.
    stale = new_id(age_s=3600)
    await bank.submit(transfer(stale, "alpha/a1", "beta/b1", "1.00"))
    refused = (await bank.wait("alpha", [stale]))[stale]
    assert refused.outcome is Outcome.REJECTED and refused.cause is RejectionCause.ID_EXPIRED
    report = await bank.audit()
    assert report.ok, report.violations


async def test_a_transfer_in_flight_past_the_horizon_stays_live_and_finishes(bank):
    bank.start("alpha")  # beta is down for longer than the horizon
    waiting = new_id()
    await bank.submit(transfer(waiting, "alpha/a1", "beta/b1", "2.00"))
    await asyncio.sleep(AGE_S)
    reports = await archive_all(bank)
    if bank.mode == "jetstream":  # core mode sends over core NATS: no inbox in the ledger
        assert any(r.held_back for r in reports), "beta's unread inbox was not held back"
    else:
        assert any(r.carried for r in reports), "the record in flight was not carried forward"
    assert await is_live(bank, "alpha", waiting), "a record in flight left the live ledger"
    reads = archive_store.ids_cache.manifest_reads
    bank.start("beta")
    assert (await bank.wait("alpha", [waiting]))[waiting].outcome is Outcome.OK
    if bank.mode == "jetstream":  # a first delivery of a posting is in no archive: no lookup
        assert archive_store.ids_cache.manifest_reads == reads
    await asyncio.sleep(AGE_S)
    await archive_all(bank)
    report = await bank.audit()
    assert report.ok, report.violations
    assert not await is_live(bank, "alpha", waiting)


async def test_a_backlog_takes_several_runs_and_a_run_says_whether_more_is_left(bank):
    """A run stops at its message bound and says so (`more`): the archiver goes on at once
    with a backlog, and otherwise waits for its next period instead of writing tiny ones."""
    bank.start_all()
    ids = [new_id() for _ in range(6)]
    await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "1.00") for i in ids))
    assert len(await bank.wait("alpha", ids)) == len(ids)
    await asyncio.sleep(AGE_S)
    k = partition_of("alpha", bank.partitions)
    lease = StreamLease(await meta_bucket(bank.nc), ledger_stream(k))
    assert await lease.take()
    try:
        runs = []
        while (report := await archive_once(bank.nc, k, bank.history, lease, max_messages=5)).more:
            runs.append(report)
        assert len(runs) >= 2 and all(r.end_seq - r.first_seq == 5 for r in runs)
        assert report.period is not None and report.end_seq - report.first_seq <= 5
        again = await archive_once(bank.nc, k, bank.history, lease)
        assert not again.more
    finally:
        await lease.release()
    report = await bank.audit()
    assert report.ok, report.violations


async def period_filters(bank: LiveBank) -> list[KeyFilter]:
    """The key filter of every archived period of every partition."""
    store = await bank.nc.jetstream().object_store(ARCHIVE_BUCKET)
    filters = []
    for k in range(bank.partitions):
        period = 0
        while (manifest := await archive_store.read_manifest(bank.nc, k, period)) is not None:
            filters.append(await filter_of(bank.nc.jetstream(), store, manifest))
            period += 1
    return filters


async def test_an_unknown_id_of_an_archived_time_reads_no_ids_shard(bank):
    """An old id nobody used, made in the very millisecond of archived ones: every period that
    may hold it answers "definitely not" from its key filter, so the lookup reads no ids shard,
    and the id is refused ID_EXPIRED; an archived one still gets its original outcome."""
    bank.start_all()
    ids = [new_id() for _ in range(6)]
    await bank.submit(*(transfer(i, "alpha/a1", "beta/b1", "1.00") for i in ids))
    assert len(await bank.wait("alpha", ids)) == len(ids)
    await asyncio.sleep(AGE_S)
    assert await archive_all(bank)
    filters = await period_filters(bank)
    assert filters
    same_time = (ids[0][:10] + f"{n:016d}" for n in range(10_000))  # ids[0]'s time, exactly
    unknown = next(
        candidate
        for candidate in same_time
        if not any(
            f.may_hold(key)
            for f in filters
            for key in (outgoing_key("alpha", candidate), incoming_key("beta", "alpha", candidate))
        )
    )  # the filters are deterministic: a false positive would read a shard (allowed)
    shards, rejected = archive_store.ids_cache.reads, archive_store.filter_cache.rejected
    await bank.submit(transfer(unknown, "alpha/a1", "beta/b1", "1.00"))
    refused = (await bank.wait("alpha", [unknown]))[unknown]
    assert refused.outcome is Outcome.REJECTED and refused.cause is RejectionCause.ID_EXPIRED
    assert archive_store.ids_cache.reads == shards
    assert archive_store.filter_cache.rejected > rejected

    await bank.submit(transfer(ids[1], "alpha/a1", "beta/b1", "1.00"))
    assert (await bank.wait("alpha", [ids[1]]))[ids[1]].outcome is Outcome.OK
