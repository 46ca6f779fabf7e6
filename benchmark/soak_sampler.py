"""Sampling a soak while its load runs: at the end of every window, look at memory, the live
ledger and the archive; and read what the ledger gained (ACKs and final records,
`benchmark/measure.py`'s scan) to close each window once the read has passed its end."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

from benchmark.measure import LedgerScan
from benchmark.soak_figures import Gauges, Watched, look
from benchmark.soak_series import Sample
from benchmark.soak_windows import SoakWindows, WindowFigures
from eventsource.adapters.tasks import stop_task


class WindowScan(LedgerScan):
    """The ledger scan, feeding windows instead of keeping every transfer. It reads the
    submissions and the receivers' records only, half of what the bench's scan reads: the
    soak's workload pays registered banks only, so every transfer ends with its receiver's
    confirmation (the submitter's record is final alone only for an unknown receiver)."""

    def __init__(self, partitions: int, windows: SoakWindows) -> None:
        super().__init__(partitions)
        self.windows = windows

    def filters(self, partition: int) -> list[str]:
        submissions, received, _ = super().filters(partition)
        return [submissions, received]

    def _ack(self, key: tuple[str, str], ts: int) -> None:
        self.windows.acked(key, ts)

    def _final(self, key: tuple[str, str], ts: int, outcome: str, cause: str | None) -> None:
        self.windows.final(key, ts)


async def sample_soak(
    watched: Watched,
    scan: WindowScan,
    *,
    duration_s: float,
    drain_s: float,
    load_done: Callable[[], bool],
    report: Callable[[Sample], None] = lambda sample: None,
) -> list[Sample]:
    """One sample per window until the soak's end, then on while the load finishes and what is
    in flight drains, for at most `drain_s` more. Memory and the live ledger are looked at when
    each window ends (a task of their own); the window's transfers once the scan has read past
    its end, which may be later: `read_lag_s` says how much.

    It stops early only once every ACK and final record of the load is in a sample: the load
    was done before a scan began (so that scan read all its ACKs, stamped before), none of its
    transfers is in flight, and no event read lies in a window not yet closed."""
    windows = scan.windows
    looked: dict[int, asyncio.Future[Gauges]] = {}
    looking = asyncio.create_task(_look_every_window(watched, windows, looked))
    samples: list[Sample] = []
    try:
        while True:
            load_was_done = load_done()  # before the scan: its ACKs are all stamped by now
            began_ns = time.time_ns()
            await scan.advance(watched.nc)
            while windows.end_ns(windows.closed) <= began_ns:
                index = windows.closed
                figures = windows.close(index)
                last = samples[-1].archive_bytes if samples else 0
                gauges = await _gauges_of(looked, index, watched, last)
                t_s = round((index + 1) * windows.every_s, 3)
                lag_s = (time.time_ns() - windows.end_ns(index)) / 1e9
                samples.append(_sample(t_s, figures, gauges, len(windows.pending), lag_s))
                report(samples[-1])
                overdue = t_s >= duration_s + drain_s
                drained = load_was_done and not windows.pending and not windows.unclosed_events
                if t_s >= duration_s and (overdue or drained):
                    return samples
            next_end_ns = windows.end_ns(windows.closed)
            await asyncio.sleep(max(0.0, (next_end_ns - time.time_ns()) / 1e9))
    finally:
        await stop_task(looking)


async def _look_every_window(
    watched: Watched, windows: SoakWindows, looked: dict[int, asyncio.Future[Gauges]]
) -> None:
    """A look at the end of each window, in window order, so that the gauges of window i are
    never taken after those of window i + 1 (the live ledger of a soak that keeps everything
    only grows, however late the scan closes a window)."""
    archive = 0
    for index in itertools.count():
        await asyncio.sleep(max(0.0, (windows.end_ns(index) - time.time_ns()) / 1e9))
        waiting = looked.setdefault(index, asyncio.get_running_loop().create_future())
        try:
            gauges = await look(watched, archive)
        except Exception as exc:  # the sampler looks again itself
            if not waiting.done():
                waiting.set_exception(exc)
            continue
        if not waiting.done():
            waiting.set_result(gauges)
        archive = gauges.archive_bytes


async def _gauges_of(
    looked: dict[int, asyncio.Future[Gauges]], index: int, watched: Watched, last: int
) -> Gauges:
    """Window `index`'s gauges, as looked at when it ended (waiting for that look if it is still
    under way); looked at now only if that look failed."""
    waiting = looked.setdefault(index, asyncio.get_running_loop().create_future())
    try:
        return await waiting
    except Exception:  # a failed look at the window's end: look now
        return await look(watched, last)
    finally:
        looked.pop(index, None)


def _sample(
    t_s: float, figures: WindowFigures, gauges: Gauges, in_flight: int, lag_s: float
) -> Sample:
    return Sample(
        t_s=t_s,
        acked_per_s=figures.acked_per_s,
        completed_per_s=figures.completed_per_s,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        server_rss_mb=gauges.memory.servers_mb,
        service_rss_mb=gauges.memory.services_mb,
        archiver_rss_mb=gauges.memory.archiver_mb,
        live_subjects=gauges.live_subjects,
        live_messages=gauges.live_messages,
        archive_bytes=gauges.archive_bytes,
        in_flight=in_flight,
        read_lag_s=round(lag_s, 2),
    )
