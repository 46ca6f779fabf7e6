"""A soak's per-interval figures, pure: transfers ACKed and completed in each sample window, by
the server time of their events, and the ACK-to-final latency of those completed in it.

Window `i` spans [origin + i*every, origin + (i+1)*every). A reader that has read the ledger
after the window's end has seen every event stamped inside it (server stamps come from the same
clock), so the window can be closed then. Only transfers in flight are kept, so a soak of any
length holds what is pending, not its history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

LATENCY_MS_MAX = 3_600_000  # the histograms' range: an hour
# A final record read before its ACK (its submission is in another partition, read later in
# the same pass) waits this many closed windows for it, then counts as an orphan.
ORPHAN_WINDOWS_MAX = 3

Key = tuple[str, str]  # (submitter, transfer id)


def _histogram() -> HdrHistogram:
    return HdrHistogram(1, LATENCY_MS_MAX, 3)


@dataclass
class _Open:
    acked: int = 0
    completed: int = 0
    latency_ms: HdrHistogram = field(default_factory=_histogram)


@dataclass(frozen=True)
class WindowFigures:
    index: int
    acked_per_s: float
    completed_per_s: float
    p50_ms: float | None  # None: nothing completed in the window
    p99_ms: float | None


class SoakWindows:
    def __init__(self, origin_ns: int, every_s: float) -> None:
        if every_s <= 0:
            raise ValueError("the sample interval must be positive")
        self.origin_ns = origin_ns
        self.every_s = every_s
        self.closed = 0  # windows closed so far; the next one to close is this index
        self.pending: dict[Key, int] = {}  # ACKed, not final yet: the ACK's server time
        self.orphans: dict[Key, tuple[int, int]] = {}  # final, ACK not seen: (time, window)
        self.orphans_dropped = 0
        self.acked_total = 0
        self.completed_total = 0
        self.latency_ms = _histogram()  # every transfer completed since the origin
        self._open: dict[int, _Open] = {}

    def index_of(self, ts_ns: int) -> int:
        """The window of a server time; an event of a window already closed (it cannot happen
        with one clock) counts in the first open one rather than being lost."""
        return max(self.closed, int((ts_ns - self.origin_ns) // (self.every_s * 1e9)))

    def end_ns(self, index: int) -> int:
        return self.origin_ns + round((index + 1) * self.every_s * 1e9)

    @property
    def unclosed_events(self) -> bool:
        """Whether an event read so far lies in a window not closed yet: in no figures so far."""
        return bool(self._open)

    def acked(self, key: Key, ts_ns: int) -> None:
        """A submission's ACK; the first one counts (a repeated publish is the same transfer)."""
        if key in self.pending:
            return
        self._window(ts_ns).acked += 1
        self.acked_total += 1
        orphan = self.orphans.pop(key, None)
        if orphan is None:
            self.pending[key] = ts_ns
        else:
            self._complete(ts_ns, orphan[0])

    def final(self, key: Key, ts_ns: int) -> None:
        """A transfer's final event (final on both sides). One read before its ACK waits as an
        orphan; so does a repeat of one already counted, until it is dropped, uncounted."""
        acked = self.pending.pop(key, None)
        if acked is None:
            self.orphans.setdefault(key, (ts_ns, self.closed))
        else:
            self._complete(acked, ts_ns)

    def close(self, index: int) -> WindowFigures:
        """The figures of window `index` (the next one to close); read the ledger past its end
        first."""
        if index != self.closed:
            raise ValueError(f"window {self.closed} is the next to close, not {index}")
        window = self._open.pop(index, None) or _Open()
        self.closed += 1
        self._drop_old_orphans()
        done = window.completed
        return WindowFigures(
            index=index,
            acked_per_s=round(window.acked / self.every_s, 2),
            completed_per_s=round(done / self.every_s, 2),
            p50_ms=float(window.latency_ms.get_value_at_percentile(50)) if done else None,
            p99_ms=float(window.latency_ms.get_value_at_percentile(99)) if done else None,
        )

    def _window(self, ts_ns: int) -> _Open:
        index = self.index_of(ts_ns)
        window = self._open.get(index)
        if window is None:  # not setdefault: a histogram is costly to make for nothing
            window = self._open[index] = _Open()
        return window

    def _complete(self, acked_ns: int, final_ns: int) -> None:
        latency = max(1, (final_ns - acked_ns) // 1_000_000)
        window = self._window(final_ns)
        window.completed += 1
        window.latency_ms.record_value(min(latency, LATENCY_MS_MAX))
        self.completed_total += 1
        self.latency_ms.record_value(min(latency, LATENCY_MS_MAX))

    def _drop_old_orphans(self) -> None:
        limit = ORPHAN_WINDOWS_MAX
        old = [k for k, (_, seen) in self.orphans.items() if self.closed - seen > limit]
        for key in old:
            del self.orphans[key]
        self.orphans_dropped += len(old)
