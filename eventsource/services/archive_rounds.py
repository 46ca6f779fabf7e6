"""The archiver's rounds: every `every` seconds, each ledger stream whose lease this process
gets is archived as far as the round's cut (services/archiver.py does one run).

Paced (the default of `archive run`): the round's cut is fixed at its start, its backlog
measured, and its runs spread over a share of the interval (core/archive_pace.py), so that the
archiver's reads, writes and purges go on steadily beside the services instead of in a burst
once a round. Unpaced (`--pace 0`, the default of `--once`): each stream is drained at full
speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.kv import KeyValue

from eventsource.adapters.archive_meta import StreamLease, meta_bucket
from eventsource.core.archive_pace import RunPace, next_round_in_s, run_pace, stream_due_s
from eventsource.core.errors import ArchiveError, ArchiveLeaseLost, InfrastructureError
from eventsource.core.history import History, archivable_before_ms
from eventsource.core.limits import ARCHIVE_LEASE_GAP_S, ARCHIVE_LEASE_S
from eventsource.core.subjects import ledger_stream
from eventsource.services.archiver import RunReport, archive_once, backlog

log = logging.getLogger("natsbank.archiver")
OnRun = Callable[[RunReport], None]
Pacing = Callable[[int, float], RunPace]  # (messages to archive, seconds left) -> the next run


@dataclass(frozen=True)
class PacedRound:
    cut_ms: int  # the round's cut is taken at this time (ms): what ages later waits
    due_s: list[float]  # per stream, the loop time by which it is due
    pacing: Pacing = run_pace


async def run_archiver(
    nc: Client,
    partitions: int,
    history: History,
    stop: asyncio.Event,
    *,
    every: float,
    once: bool = False,
    pace: float = 0.0,
    lease_s: float = ARCHIVE_LEASE_S,
    crash_at: str | None = None,
    on_run: OnRun = lambda report: None,
    pacing: Pacing = run_pace,
) -> None:
    """Archive every stream whose lease this process gets, in rounds starting every `every`
    seconds, until `stop`; with `pace` above 0, each round's work spread over that share of
    `every` (`pacing` sizes each run: core/archive_pace.py's rule). A lease is held for one
    stream's drain (one paced run) and released after it, so that an audit (or another
    replica) gets in between. A run that fails is logged and tried again next round. With
    `once`: one round, each stream's lease waited for (a dead archiver's lapses), and a
    failure raised."""
    kv = await meta_bucket(nc)
    leases = [StreamLease(kv, ledger_stream(k), ttl_s=lease_s) for k in range(partitions)]
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            started = loop.time()
            paced = None
            if pace > 0:
                paced = await _plan(nc, kv, partitions, history, started + every * pace)
                paced = dataclasses.replace(paced, pacing=pacing)
            for k, lease in enumerate(leases):
                if not await _take(lease, once):
                    continue
                try:
                    if paced is None:
                        await _drain(nc, k, history, lease, stop, crash_at, on_run)
                    else:
                        held = (lease, once)
                        await _paced(nc, k, history, held, stop, (paced, k), crash_at, on_run)
                except (InfrastructureError, ArchiveError) as exc:
                    if once:
                        raise
                    log.error("archiving %s failed, tried again next round: %s", lease.stream, exc)
                finally:
                    await lease.release()  # between runs an audit (or another replica) may take it
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next_round_in_s(every, loop.time() - started))
    finally:
        for lease in leases:
            await lease.release()


async def _take(lease: StreamLease, once: bool) -> bool:
    """Take the lease; `once` waits for another holder's to lapse, and raises if it does not."""
    if not once:
        return await lease.take()
    if not await lease.wait_for(2 * lease.ttl_s):
        raise ArchiveLeaseLost(f"{lease.stream}: {lease.other} holds its lease")
    return True


async def _plan(
    nc: Client, kv: KeyValue, partitions: int, history: History, window_ends: float
) -> PacedRound:
    """A paced round that starts now and ends its work by the loop time `window_ends`: its
    cut, and each stream's share of the window (core/archive_pace.py)."""
    loop = asyncio.get_running_loop()
    starts = loop.time()
    now_ms = time.time_ns() // 1_000_000
    cutoff = archivable_before_ms(now_ms, history)
    backlogs = []
    for k in range(partitions):
        try:
            backlogs.append(0 if cutoff is None else await backlog(nc, kv, k, cutoff))
        except (InfrastructureError, ArchiveError) as exc:
            log.warning("backlog of partition %d unknown (%s): paced as if empty", k, exc)
            backlogs.append(0)
    due = stream_due_s(backlogs, max(0.0, window_ends - starts))
    return PacedRound(now_ms, [starts + s for s in due])


async def _drain(nc, partition, history, lease, stop, crash_at, on_run: OnRun) -> None:
    """Runs on one stream at full speed while a run stops at its message bound (a backlog
    takes several). Not until nothing is old enough: under load a few more messages age during
    every run, and the archiver would write period after tiny period instead of one a round."""
    while not stop.is_set():
        report = await archive_once(nc, partition, history, lease, crash_at=crash_at)
        on_run(report)
        if report.period is None or not report.more:
            return


async def _paced(nc, partition, history, held, stop, due, crash_at, on_run: OnRun) -> None:
    """Paced runs on one stream (`due`: the round and the stream's place in it) up to the
    round's cut, each sized and read at the rate its backlog and the time left ask for.
    Between two runs the lease is free a moment: an audit may take it (this stream's rest then
    waits for the next round, which goes faster for it; `--once` waits for the lease)."""
    (lease, once), (paced, k) = held, due
    cut_ms, due_s = paced.cut_ms, paced.due_s[k]
    loop = asyncio.get_running_loop()

    def pace(messages: int) -> RunPace:
        return paced.pacing(messages, due_s - loop.time())

    while not stop.is_set():
        report = await archive_once(
            nc, partition, history, lease, now_ms=cut_ms, crash_at=crash_at, pace=pace
        )
        on_run(report)
        if report.period is None or not report.more:
            return
        await lease.release()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ARCHIVE_LEASE_GAP_S)
        if stop.is_set() or not await _take(lease, once):
            return
