"""A soak's sample windows: each transfer counts in the window of its final event's server
time, with its ACK-to-final latency, and only transfers in flight are kept."""

from __future__ import annotations

import pytest

from benchmark.soak_windows import ORPHAN_WINDOWS_MAX, SoakWindows

S = 1_000_000_000  # ns per second
ORIGIN = 1_700_000_000 * S


def at(seconds: float) -> int:
    return ORIGIN + round(seconds * S)


def test_a_transfer_counts_in_the_window_where_it_became_final() -> None:
    windows = SoakWindows(ORIGIN, 5.0)
    windows.acked(("a", "t1"), at(4.0))
    windows.final(("a", "t1"), at(6.5))

    first, second = windows.close(0), windows.close(1)

    assert (first.acked_per_s, first.completed_per_s) == (0.2, 0.0)
    assert first.p50_ms is None and first.p99_ms is None
    assert (second.acked_per_s, second.completed_per_s) == (0.0, 0.2)
    assert second.p50_ms == second.p99_ms == pytest.approx(2500, rel=0.001)
    assert windows.pending == {} and windows.completed_total == 1


def test_latency_percentiles_are_those_of_the_window_only() -> None:
    windows = SoakWindows(ORIGIN, 10.0)
    for n in range(100):  # window 0: latencies 1..100 ms
        windows.acked(("a", f"x{n}"), at(1.0))
        windows.final(("a", f"x{n}"), at(1.0) + (n + 1) * 1_000_000)
    windows.acked(("a", "slow"), at(2.0))
    windows.final(("a", "slow"), at(12.0))  # window 1: 10 s

    first, second = windows.close(0), windows.close(1)

    assert first.completed_per_s == 10.0
    assert first.p50_ms == pytest.approx(50, abs=1) and first.p99_ms == pytest.approx(99, abs=1)
    assert second.p50_ms == second.p99_ms == pytest.approx(10_000, rel=0.001)
    assert windows.latency_ms.get_max_value() == pytest.approx(10_000, rel=0.001)


def test_only_transfers_in_flight_are_kept() -> None:
    windows = SoakWindows(ORIGIN, 1.0)
    for n in range(1000):
        windows.acked(("a", f"t{n}"), at(n / 1000))
        if n % 10:
            windows.final(("a", f"t{n}"), at(n / 1000 + 0.01))

    assert len(windows.pending) == 100
    assert windows.acked_total == 1000 and windows.completed_total == 900


def test_an_event_read_beyond_the_closed_windows_is_in_no_figures_yet() -> None:
    """What the sampler checks before it stops: a transfer ACKed and final (none in flight)
    late in a window still open is counted only once that window closes."""
    windows = SoakWindows(ORIGIN, 5.0)
    windows.acked(("a", "t1"), at(4.0))
    windows.final(("a", "t1"), at(6.0))
    assert windows.unclosed_events and windows.pending == {}

    assert windows.close(0).acked_per_s == 0.2
    assert windows.unclosed_events  # the final, in window 1
    assert windows.close(1).completed_per_s == 0.2
    assert not windows.unclosed_events


def test_a_repeated_ack_is_the_same_transfer() -> None:
    windows = SoakWindows(ORIGIN, 1.0)
    windows.acked(("a", "t1"), at(0.1))
    windows.acked(("a", "t1"), at(0.2))
    windows.final(("a", "t1"), at(0.3))

    figures = windows.close(0)

    assert (figures.acked_per_s, figures.completed_per_s) == (1.0, 1.0)
    assert figures.p50_ms == pytest.approx(200, rel=0.01)


def test_a_final_read_before_its_ack_waits_for_it() -> None:
    """With several partitions the receiver's record can be read before the submission."""
    windows = SoakWindows(ORIGIN, 1.0)
    windows.final(("a", "t1"), at(0.5))
    windows.acked(("a", "t1"), at(0.2))

    figures = windows.close(0)

    assert figures.completed_per_s == 1.0 and figures.p50_ms == pytest.approx(300, rel=0.01)
    assert windows.orphans == {} and windows.pending == {}


def test_a_final_without_an_ack_is_dropped_after_a_few_windows() -> None:
    windows = SoakWindows(ORIGIN, 1.0)
    windows.final(("a", "never-acked"), at(0.5))
    for index in range(ORPHAN_WINDOWS_MAX):
        windows.close(index)
    assert ("a", "never-acked") in windows.orphans

    windows.close(ORPHAN_WINDOWS_MAX)

    assert windows.orphans == {} and windows.orphans_dropped == 1
    assert windows.completed_total == 0


def test_an_event_of_a_closed_window_counts_in_the_next_open_one() -> None:
    windows = SoakWindows(ORIGIN, 1.0)
    windows.close(0)
    windows.acked(("a", "late"), at(0.5))

    assert windows.close(1).acked_per_s == 1.0


def test_windows_close_in_order() -> None:
    windows = SoakWindows(ORIGIN, 1.0)
    with pytest.raises(ValueError, match="window 0 is the next to close"):
        windows.close(1)
    with pytest.raises(ValueError, match="positive"):
        SoakWindows(ORIGIN, 0)


def test_a_window_ends_every_interval_after_the_origin() -> None:
    windows = SoakWindows(ORIGIN, 2.5)
    assert windows.end_ns(0) == at(2.5)
    assert windows.end_ns(3) == at(10.0)
    assert windows.index_of(at(2.49)) == 0 and windows.index_of(at(2.5)) == 1
