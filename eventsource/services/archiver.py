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

A paced run (services/archive_rounds.py, core/archive_pace.py) takes fewer messages and reads
them at a bounded rate, renewing its lease as it goes; the steps are the same.

A kill -9 at any point leaves nothing lost and nothing twice: before 6 nothing was removed and
the next run starts again from the same head (a carried copy is a harmless repeat); after 6
the next run finishes step 7 first. CRASH_POINTS names the places the fault tests kill it at.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.kv import KeyValue

from eventsource.adapters import archive_store
from eventsource.adapters.archive_meta import StreamLease, advance_head, read_head
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
from eventsource.core.archive_pace import RunPace, pace_step, pause_s
from eventsource.core.errors import ArchiveCorrupt
from eventsource.core.history import History, archivable_before_ms
from eventsource.core.limits import ARCHIVE_RUN_MESSAGES_MAX
from eventsource.core.subjects import KeySpace, key_of_subject, partition_space

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
    pace: Callable[[int], RunPace] | None = None,
) -> RunReport:
    """One run on partition k's stream (see the module's docstring); the caller holds `lease`.
    `now_ms` fixes the cut's time (a paced round's start). `pace`, given the messages old
    enough to go, says how many this run takes and how fast it reads them (instead of
    `max_messages` at full speed)."""
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
    due = max(0, min(by_time, last_seq + 1) - head.end_seq)
    plan = pace(due) if pace is not None else RunPace(max_messages)
    end = cut_sequence(head.end_seq, by_time, last_seq, plan.messages)
    if end <= head.end_seq:
        return RunReport(stream, None)
    keys = tuple(await operator_keys(nc))  # I8: funding in the period is checked too
    cut = CutFold.seeded_with(await read_snapshot(nc, partition, head), keys)
    manifest = await archive_store.write_period(
        nc,
        partition,
        head.period,
        _folded(nc, space, cut, (head.end_seq, end), crash_at, _Pacer.of(plan, lease)),
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


async def backlog(nc: Client, kv: KeyValue, partition: int, cutoff_ms: int) -> int:
    """The messages of partition k's stream from its archive head to the first one at or after
    `cutoff_ms`: what a run with that cut has to archive."""
    stream = partition_space(partition).stream
    head, _ = await read_head(kv, stream)
    _, last_seq = await stream_bounds(nc, stream)
    by_time = await first_sequence_at(nc, stream, cutoff_ms, last_seq)
    return max(0, min(by_time, last_seq + 1) - head.end_seq)


class _Pacer:
    """Holds a paced read to its rate (core/archive_pace.py), and renews the run's lease while
    the read lasts (a paced read may outlast a lease that is only renewed between steps)."""

    def __init__(self, plan: RunPace, lease: StreamLease) -> None:
        self.rate = plan.rate
        self.step_every = pace_step(plan.messages)
        self.lease = lease
        self.read = 0
        self.started = self.renewed = time.monotonic()

    @classmethod
    def of(cls, plan: RunPace, lease: StreamLease) -> _Pacer | None:
        return cls(plan, lease) if plan.paced else None

    async def step(self) -> None:
        self.read += 1
        if self.read % self.step_every:
            return
        wait = pause_s(self.read, time.monotonic() - self.started, self.rate)
        if wait > 0:
            await asyncio.sleep(wait)  # at most a step at the rate: a fraction of a second
        if time.monotonic() - self.renewed > self.lease.ttl_s / 3:
            await self.lease.renew()  # ArchiveLeaseLost if another holder has it
            self.renewed = time.monotonic()


async def _folded(
    nc: Client,
    space: KeySpace,
    cut: CutFold,
    sequences: tuple[int, int],
    crash_at: str | None,
    pacer: _Pacer | None,
) -> AsyncIterator:
    """The messages `start <= seq < end` in order, each state event folded as it passes;
    with a pacer, no faster than its rate."""
    start, end = sequences
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
        if pacer is not None:
            await pacer.step()


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
