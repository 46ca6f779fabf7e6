"""The archiver's pacing rule (core/archive_pace.py): a round's work spread over its window,
faster as the backlog grows, full speed once overdue, and never behind for good."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from eventsource.core.archive_pace import (
    FULL_SPEED,
    RunPace,
    next_round_in_s,
    pace_step,
    pause_s,
    run_pace,
    stream_due_s,
)
from eventsource.core.limits import (
    ARCHIVE_PACE_RATE_MIN,
    ARCHIVE_PACE_RUN_S,
    ARCHIVE_PACE_STEP_MESSAGES,
    ARCHIVE_RUN_MESSAGES_MAX,
)


def test_streams_share_the_window_in_proportion_to_their_backlogs_in_order():
    assert stream_due_s([100, 300, 0, 600], 50.0) == [5.0, 20.0, 20.0, 50.0]


def test_with_nothing_due_the_window_is_shared_evenly():
    assert stream_due_s([0, 0], 30.0) == [15.0, 30.0]
    assert stream_due_s([-5, 0], 30.0) == [15.0, 30.0]  # a head past the cut counts as 0


def test_a_run_reads_its_backlog_over_the_time_left_in_runs_of_a_few_seconds():
    pace = run_pace(300_000, 45.0)
    assert pace.rate == 300_000 / 45.0
    assert pace.messages == math.ceil(pace.rate * ARCHIVE_PACE_RUN_S)
    assert pace.paced


def test_a_small_backlog_is_read_at_the_least_rate_and_a_huge_one_in_the_largest_runs():
    small = run_pace(100, 45.0)
    assert small.rate == ARCHIVE_PACE_RATE_MIN
    assert small.messages == math.ceil(ARCHIVE_PACE_RATE_MIN * ARCHIVE_PACE_RUN_S)
    huge = run_pace(50_000_000, 45.0)
    assert huge.messages == ARCHIVE_RUN_MESSAGES_MAX
    assert huge.rate == 50_000_000 / 45.0


def test_due_now_or_overdue_is_full_speed():
    assert run_pace(10, 0.0) == FULL_SPEED
    assert run_pace(10, -3.0) == FULL_SPEED
    assert not FULL_SPEED.paced
    assert FULL_SPEED.messages == ARCHIVE_RUN_MESSAGES_MAX


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0.01, max_value=3600.0),
)
def test_more_to_do_never_reads_slower(smaller, larger, seconds_left):
    low, high = sorted((smaller, larger))
    assert run_pace(high, seconds_left).rate >= run_pace(low, seconds_left).rate


@given(st.integers(min_value=0, max_value=10**9), st.floats(min_value=0.01, max_value=3600.0))
def test_a_paced_run_reads_for_a_few_seconds_at_most(backlog, seconds_left):
    """What keeps its writes and purge small, and its lease renewed often enough."""
    pace = run_pace(backlog, seconds_left)
    assert pace.messages / pace.rate <= ARCHIVE_PACE_RUN_S + 1 / pace.rate
    assert 1 <= pace.messages <= ARCHIVE_RUN_MESSAGES_MAX


def test_a_reader_ahead_of_its_rate_waits_and_one_behind_does_not():
    assert pause_s(1000, 0.25, 2000.0) == 0.25
    assert pause_s(1000, 0.5, 2000.0) == 0.0
    assert pause_s(1000, 2.0, 2000.0) == 0.0
    assert pause_s(10**6, 0.0, math.inf) == 0.0


def test_a_paced_read_looks_at_the_clock_often_and_at_least_ten_times_a_run():
    assert pace_step(ARCHIVE_RUN_MESSAGES_MAX) == ARCHIVE_PACE_STEP_MESSAGES
    assert pace_step(130) == 13
    assert pace_step(3) == 1


def test_rounds_start_every_interval_and_a_late_one_is_followed_at_once():
    assert next_round_in_s(60.0, 45.5) == 14.5
    assert next_round_in_s(60.0, 75.0) == 0.0


def simulate(inflow: float, speed: float, every: float, share: float, rounds: int, start=0.0):
    """Backlog at each round's start: messages age at `inflow`/s, the archiver reads at most
    `speed`/s, each run costs 0.5 s besides its read (writes, purge, the lease gap)."""
    now, backlog, seen = 0.0, start, []
    for _ in range(rounds):
        seen.append(backlog)
        round_start, todo = now, backlog  # the round's cut: what aged later waits
        due = round_start + stream_due_s([round(todo)], every * share)[0]
        while todo > 0:
            pace = run_pace(round(todo), due - now)
            take = min(todo, pace.messages)
            now += take / min(pace.rate, speed) + 0.5
            todo -= take
        elapsed = now - round_start
        now += next_round_in_s(every, elapsed)
        backlog = inflow * (now - round_start)
    return seen


def test_paced_rounds_keep_up_with_a_steady_inflow():
    seen = simulate(inflow=5000, speed=16_000, every=60, share=0.75, rounds=40, start=300_000)
    assert max(seen[10:]) <= 5000 * 60 * 1.01  # one interval's worth, not growing


def test_paced_rounds_catch_up_after_the_archiver_was_down():
    backlog = 5000 * 3600  # an hour's worth waiting
    seen = simulate(inflow=5000, speed=16_000, every=60, share=0.75, rounds=200, start=backlog)
    first_caught_up = next(i for i, b in enumerate(seen) if b <= 5000 * 60 * 1.01)
    assert all(b <= 5000 * 60 * 1.01 for b in seen[first_caught_up:])
    assert first_caught_up < 100


def test_the_run_pace_is_a_value():
    assert RunPace(5) == RunPace(5, math.inf)
