"""How fast the archiver works, pure: a round's work spread over the interval until the next
round instead of read in one burst (services/archive_rounds.py does the waiting).

A round looks at every ledger stream once; its cut is fixed when it starts (everything older
than `now - horizon - skew` then). Messages that age during the round wait for the next one,
so a round has a known amount of work, its **backlog**: per stream, the messages from the
archive's head to the round's cut. The round spreads it over a **window**, a share of the
interval between rounds (`archive run --pace`): each stream is due by the end of its part of
the window (parts in proportion to the backlogs, streams in the order the round takes them),
and each run of a stream reads at `what is left / time left until it is due`. A run that
takes longer than planned (its writes, its purge, a busy machine) leaves less time, so the
next reads faster; past its due time a stream is archived at full speed, in runs of the
largest size. So the archiver never falls behind for good: the more there is to archive, the
faster it reads, and at worst it works as an unpaced archiver does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from eventsource.core.limits import (
    ARCHIVE_PACE_RATE_MIN,
    ARCHIVE_PACE_RUN_S,
    ARCHIVE_PACE_STEP_MESSAGES,
    ARCHIVE_RUN_MESSAGES_MAX,
)


@dataclass(frozen=True, slots=True)
class RunPace:
    """One archive run: the messages it takes at most, and how fast it may read them."""

    messages: int
    rate: float = math.inf  # messages/s; inf: as fast as it can

    @property
    def paced(self) -> bool:
        return math.isfinite(self.rate)


FULL_SPEED = RunPace(ARCHIVE_RUN_MESSAGES_MAX)


def stream_due_s(backlogs: Sequence[int], window_s: float) -> list[float]:
    """Seconds after the round's start by which each stream should be archived: the window
    shared in proportion to the backlogs, in order (evenly when nothing is due)."""
    total = sum(max(0, b) for b in backlogs)
    if total == 0:
        return [window_s * (i + 1) / len(backlogs) for i in range(len(backlogs))]
    due, done = [], 0
    for backlog in backlogs:
        done += max(0, backlog)
        due.append(window_s * done / total)
    return due


def run_pace(backlog: int, seconds_left: float) -> RunPace:
    """The next run of a stream with `backlog` messages to archive, due in `seconds_left`:
    reading at `backlog / seconds_left` (at least ARCHIVE_PACE_RATE_MIN), and taking what it
    reads in ARCHIVE_PACE_RUN_S at that rate (at most ARCHIVE_RUN_MESSAGES_MAX): a run's
    writes and purge stay small, and its lease is renewed often. Due now or overdue: full
    speed."""
    if seconds_left <= 0:
        return FULL_SPEED
    rate = max(ARCHIVE_PACE_RATE_MIN, backlog / seconds_left)
    return RunPace(min(ARCHIVE_RUN_MESSAGES_MAX, math.ceil(rate * ARCHIVE_PACE_RUN_S)), rate)


def pause_s(read: int, elapsed_s: float, rate: float) -> float:
    """How long a reader that has read `read` messages in `elapsed_s` seconds waits before the
    next, so as not to run ahead of `rate` (0 when it is on time or behind)."""
    if not math.isfinite(rate) or rate <= 0:
        return 0.0
    return max(0.0, read / rate - elapsed_s)


def pace_step(messages: int) -> int:
    """After how many messages a paced read of a run of `messages` looks at the clock: every
    ARCHIVE_PACE_STEP_MESSAGES, and at least ten times a run (a small run is paced too)."""
    return max(1, min(ARCHIVE_PACE_STEP_MESSAGES, messages // 10))


def next_round_in_s(every_s: float, elapsed_s: float) -> float:
    """Rounds start every `every_s` seconds; one that took longer is followed at once."""
    return max(0.0, every_s - elapsed_s)
