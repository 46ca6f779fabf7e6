"""The archiver: moves what is older than the live horizon out of each ledger stream into the
archive, crash-safely (docs/ARCHITECTURE.md, "Bounded history").

One run on one stream, under the stream's lease (adapters/archive_meta.py):

1. finish the purge of a run that advanced the head and died before purging;
2. cut: every message below the cut is older than now - horizon - skew (core/history.py);
3. read the messages from the head to the cut, folding them from the last period's snapshot
   (core/archive_fold.py) while they stream into the archive;
4. carry forward what must stay live (every account, every record not final) whose latest
   event is below the cut: a copy of that event, written only if the key has not moved since;
5. store the period (events, final records, snapshot, manifest), read back and verified;
6. advance the head with a compare-and-set: from now on the archive answers for the period;
7. purge below the cut, group by group, never past what a consumer has not acknowledged.

A kill -9 at any point leaves nothing lost and nothing twice: before 6 nothing was removed and
the next run starts again from the same head (a carried copy is a harmless repeat); after 6
the next run finishes step 7 first. CRASH_POINTS names the places the fault tests kill it at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from nats.aio.client import Client

from eventsource.adapters import archive_store
from eventsource.adapters.archive_meta import StreamLease, advance_head, meta_bucket, read_head
from eventsource.adapters.archive_stream import (
    carry_forward,
    consumer_floors,
    first_sequence_at,
    purge_groups,
    stream_bounds,
)
from eventsource.adapters.key_registry import operator_keys
from eventsource.adapters.stream_reader import read_messages
from eventsource.core.archive_cut import cut_sequence, group_ends
from eventsource.core.archive_fold import CARRIED_HEADER, CutFold
from eventsource.core.archive_format import PeriodExtras
from eventsource.core.archive_head import Head, SnapshotEntry, decode_snapshot
from eventsource.core.errors import (
    ArchiveCorrupt,
    ArchiveError,
    ArchiveLeaseLost,
    InfrastructureError,
)
from eventsource.core.history import History, archivable_before_ms
from eventsource.core.limits import ARCHIVE_LEASE_S, ARCHIVE_RUN_MESSAGES_MAX
from eventsource.core.subjects import KeySpace, key_of_subject, ledger_stream, partition_space

log = logging.getLogger("natsbank.archiver")
# Where the fault tests kill a run: halfway through reading the period, once it is stored and
# verified, once what stays live is carried forward, once the head moved, once purged.
CRASH_POINTS = ("reading", "stored", "carried", "advanced", "purged")


@dataclass(frozen=True)
class RunReport:
    stream: str
    period: int | None  # None: nothing was old enough
    first_seq: int = 0
    end_seq: int = 0
    messages: int = 0
    carried: int = 0
    held_back: dict[str, str] | None = None  # purge group -> the consumer that holds it
    more: bool = False  # the run stopped at ARCHIVE_RUN_MESSAGES_MAX: older messages remain

    def describe(self) -> str:
        if self.period is None:
            return f"{self.stream}: nothing to archive"
        held = "".join(f"; {g} held by {c}" for g, c in (self.held_back or {}).items())
        return (
            f"{self.stream}: period {self.period} = sequences {self.first_seq}..{self.end_seq - 1}"
            f" ({self.messages} messages, {self.carried} carried forward){held}"
        )


async def archive_once(
    nc: Client,
    partition: int,
    history: History,
    lease: StreamLease,
    *,
    now_ms: int | None = None,
    crash_at: str | None = None,
    max_messages: int = ARCHIVE_RUN_MESSAGES_MAX,
) -> RunReport:
    """One run on partition k's stream (see the module's docstring); the caller holds `lease`."""
    space = partition_space(partition)
    stream = space.stream
    head, revision = await read_head(lease.kv, stream)
    await _purge(nc, stream, head.end_seq)  # a run that died between 6 and 7
    first_live, last_seq = await stream_bounds(nc, stream)
    if first_live > head.end_seq and last_seq >= head.end_seq:
        raise ArchiveCorrupt(
            f"{stream} starts at sequence {first_live} but its archive ends at {head.end_seq}: "
            "messages were removed that the archive does not hold"
        )
    cutoff = archivable_before_ms(now_ms or time.time_ns() // 1_000_000, history)
    if cutoff is None:
        return RunReport(stream, None)
    by_time = await first_sequence_at(nc, stream, cutoff, last_seq)
    end = cut_sequence(head.end_seq, by_time, last_seq, max_messages)
    if end <= head.end_seq:
        return RunReport(stream, None)
    keys = tuple(await operator_keys(nc))  # I8: funding in the period is checked too
    cut = CutFold.seeded_with(await read_snapshot(nc, partition, head), keys)
    manifest = await archive_store.write_period(
        nc,
        partition,
        head.period,
        _folded(nc, space, cut, head.end_seq, end, crash_at),
        head.chain,
        first_seq=head.end_seq,
        end_seq=end,
        extras=lambda: PeriodExtras.of(cut),
        ids_below_ms=cutoff + 2 * history.skew_ms,  # twice: servers' clocks differ a little too
    )
    _crash_here("stored", crash_at)
    await lease.renew()
    carried = await carry_forward(nc, space, cut.snapshot(), end)
    _crash_here("carried", crash_at)
    await lease.renew()
    fold = cut.fold
    advanced = Head(
        period=head.period + 1,
        end_seq=end,
        chain=manifest.chain,
        totals=head.totals.plus(dict(fold.funded), dict(fold.settled), dict(fold.confirmed)),
        problems=head.problems + len(fold.problems),
        archived_at_ms=manifest.archived_at_ms,
    )
    await advance_head(lease.kv, stream, advanced, revision)
    _crash_here("advanced", crash_at)
    held = await _purge(nc, stream, end)
    _crash_here("purged", crash_at)
    more = end < min(by_time, last_seq + 1)  # capped: a backlog the next run goes on with
    return RunReport(stream, head.period, head.end_seq, end, cut.events, carried, held, more)


async def read_snapshot(nc: Client, partition: int, head: Head) -> list[SnapshotEntry]:
    """The state at the head: the last archived period's snapshot (nothing before period 0)."""
    if head.period == 0:
        return []
    return decode_snapshot(await archive_store.read_snapshot(nc, partition, head.period - 1))


async def _folded(
    nc: Client, space: KeySpace, cut: CutFold, start: int, end: int, crash_at: str | None
) -> AsyncIterator:
    """The messages `start <= seq < end` in order, each state event folded as it passes."""
    async for msg in read_messages(nc, space.stream, start_seq=start):
        seq = msg.seq
        if seq >= end:
            return
        if seq >= (start + end) // 2:
            _crash_here("reading", crash_at)
        key = key_of_subject(msg.subject) if msg.subject.startswith(space.prefix) else None
        if key is not None:
            carried = CARRIED_HEADER in (msg.headers or {})
            cut.add(key, msg.data, seq, carried=carried)
        yield msg


async def _purge(nc: Client, stream: str, end: int) -> dict[str, str]:
    """Purge every group below `end`, or below what its consumers have not acknowledged;
    returns the groups held back and by whom."""
    groups, consumers = await consumer_floors(nc, stream)
    ends = group_ends(groups, consumers, end)
    await purge_groups(nc, stream, {g: e for g, (e, _) in ends.items()}, end)
    return {g: c for g, (e, c) in ends.items() if c is not None and e < end}


def _crash_here(point: str, crash_at: str | None) -> None:
    """The fault tests' kill -9 at a named point of a run (`archive run --crash-at`)."""
    if crash_at == point:
        log.warning("killing this archiver at %r (--crash-at)", point)
        os.kill(os.getpid(), signal.SIGKILL)


async def run_archiver(
    nc: Client,
    partitions: int,
    history: History,
    stop: asyncio.Event,
    *,
    every: float,
    once: bool = False,
    lease_s: float = ARCHIVE_LEASE_S,
    crash_at: str | None = None,
    on_run: Callable[[RunReport], None] = lambda report: None,
) -> None:
    """Archive every stream whose lease this process gets, every `every` seconds, until
    `stop`. A lease is held for one stream's drain and released after it, so that an audit
    (or another replica) gets in between runs. A run that fails is logged and tried again
    next time. With `once`: one round, each stream's lease waited for (a dead archiver's
    lapses), and a failure raised."""
    kv = await meta_bucket(nc)
    leases = [StreamLease(kv, ledger_stream(k), ttl_s=lease_s) for k in range(partitions)]
    try:
        while not stop.is_set():
            for k, lease in enumerate(leases):
                taken = await (lease.wait_for(2 * lease_s) if once else lease.take())
                if not taken:
                    if once:
                        raise ArchiveLeaseLost(f"{lease.stream}: {lease.other} holds its lease")
                    continue
                try:
                    await _drain(nc, k, history, lease, stop, crash_at, on_run)
                except (InfrastructureError, ArchiveError) as exc:
                    if once:
                        raise
                    log.error("archiving %s failed, next try in %g s: %s", lease.stream, every, exc)
                finally:
                    await lease.release()  # between runs an audit (or another replica) may take it
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        for lease in leases:
            await lease.release()


async def _drain(nc, partition, history, lease, stop, crash_at, on_run) -> None:
    """Runs on one stream while a run stops at its message bound (a backlog takes several).
    Not until nothing is old enough: under load a few more messages age during every run, and
    the archiver would write period after tiny period instead of one per `every`."""
    while not stop.is_set():
        report = await archive_once(nc, partition, history, lease, crash_at=crash_at)
        on_run(report)
        if report.period is None or not report.more:
            return
