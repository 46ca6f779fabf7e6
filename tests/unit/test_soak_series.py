"""A soak's series: the least-squares trend over the last two thirds, its verdict against the
named threshold, and the data the chart draws."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.soak_series import (
    FLAT_PCT_PER_10MIN_MAX,
    JUDGED,
    TREND_SAMPLES_MIN,
    Sample,
    all_flat,
    chart_series,
    fitted_line,
    least_squares,
    trend_of,
    trends,
)

BASE = Sample(
    t_s=0.0,
    acked_per_s=100.0,
    completed_per_s=100.0,
    p50_ms=20.0,
    p99_ms=80.0,
    server_rss_mb={"n1": 100.0, "n2": 110.0},
    service_rss_mb=50.0,
    archiver_rss_mb=0.0,
    live_subjects=1000,
    live_messages=4000,
    archive_bytes=0,
    in_flight=3,
)


def soak(minutes: int, every_s: float = 60.0, **growth_per_s: float) -> list[Sample]:
    """Samples over `minutes`; each named scalar series grows by the given amount per second."""
    samples = []
    for n in range(1, int(minutes * 60 / every_s) + 1):
        t = n * every_s
        changes = {name: getattr(BASE, name) + rate * t for name, rate in growth_per_s.items()}
        samples.append(dataclasses.replace(BASE, t_s=t, **changes))
    return samples


def test_least_squares_finds_the_line_through_exact_points() -> None:
    slope, intercept = least_squares([(0, 1), (1, 3), (2, 5)])
    assert (slope, intercept) == pytest.approx((2.0, 1.0))
    with pytest.raises(ValueError, match="two different times"):
        least_squares([(1, 1), (1, 2)])


def test_the_slope_is_reported_as_percent_of_the_mean_per_ten_minutes() -> None:
    # 100 + 0.01 t over [0, 1200 s]: mean 106, slope 6 per 10 minutes = 5.66%.
    points = [(float(t), 100 + 0.01 * t) for t in range(0, 1201, 60)]
    trend = trend_of(points)
    assert trend.mean == pytest.approx(106.0)
    assert trend.pct_per_10min == pytest.approx(600 * 0.01 / 106 * 100, abs=0.01)
    assert trend.verdict == "rising"


def test_a_series_rising_no_faster_than_the_threshold_is_flat() -> None:
    rate = FLAT_PCT_PER_10MIN_MAX / 100 * 1000 / 600  # the threshold, around a mean of 1000
    times = [float(t) for t in range(0, 1201, 60)]
    just_under = trend_of([(t, 1000 + 0.99 * rate * (t - 600)) for t in times])
    just_over = trend_of([(t, 1000 + 1.01 * rate * (t - 600)) for t in times])
    assert just_under.verdict == "flat" and just_over.verdict == "rising"
    assert just_under.pct_per_10min == pytest.approx(0.99 * FLAT_PCT_PER_10MIN_MAX, abs=0.01)


def test_a_falling_series_is_flat_since_only_a_rise_is_a_problem() -> None:
    points = [(float(t), 1000 - t) for t in range(0, 600, 60)]
    assert trend_of(points).verdict == "flat"
    assert trend_of(points).pct_per_10min < 0


def test_too_few_samples_give_no_verdict() -> None:
    points = [(float(t), 1.0) for t in range(TREND_SAMPLES_MIN - 1)]
    trend = trend_of(points)
    assert trend.verdict == "too few samples" and trend.slope_per_s is None


def test_a_series_of_zeros_is_flat_and_one_rising_from_zero_is_not() -> None:
    assert trend_of([(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]).verdict == "flat"
    rising = trend_of([(0.0, -1.0), (1.0, 0.0), (2.0, 1.0)])  # mean 0, slope 1
    assert rising.verdict == "rising" and rising.pct_per_10min is None


def test_the_first_third_and_the_drain_are_left_out_of_the_trend() -> None:
    steady = soak(30)
    warm_up = [dataclasses.replace(s, live_subjects=10 * s.live_subjects) for s in steady[:9]]
    drain = [dataclasses.replace(BASE, t_s=1860.0, live_subjects=10**9)]
    found = trends(warm_up + steady[9:] + drain, duration_s=1800)
    assert found["live_subjects"].verdict == "flat"
    assert found["live_subjects"].samples == 21  # minutes 10 to 30


def test_growing_live_state_is_found_and_a_judged_rise_makes_the_soak_not_flat() -> None:
    found = trends(soak(30, live_subjects=10.0, archive_bytes=1e6), duration_s=1800)
    assert found["live_subjects"].verdict == "rising" and found["live_subjects"].judged
    assert found["archive_mb"].verdict == "rising" and not found["archive_mb"].judged
    assert all_flat(found) is False
    assert all_flat(trends(soak(30, archive_bytes=1e6), duration_s=1800)) is True


def test_every_judged_series_has_a_verdict() -> None:
    found = trends(soak(30), duration_s=1800)
    assert set(JUDGED) <= set(found)
    assert {found[name].verdict for name in JUDGED} == {"flat"}
    assert all_flat(trends(soak(1), duration_s=60)) is None  # too short for a verdict


def test_windows_without_a_completed_transfer_leave_a_gap_in_latency() -> None:
    samples = soak(30)
    samples[20] = dataclasses.replace(samples[20], p50_ms=None, p99_ms=None)
    found = trends(samples, duration_s=1800)
    assert found["p99_ms"].samples == 20 and found["live_subjects"].samples == 21


def test_chart_series_has_time_in_minutes_and_every_series_by_name() -> None:
    samples = soak(3)
    samples[1] = dataclasses.replace(samples[1], p99_ms=None, archive_bytes=3 * 2**20)
    series = chart_series(samples)
    assert series["t_min"] == [1.0, 2.0, 3.0]
    assert series["server_rss_mb"] == [210.0] * 3  # summed over the nodes
    assert series["server_rss_mb.n1"] == [100.0] * 3
    assert series["server_rss_mb.n2"] == [110.0] * 3
    assert series["p99_ms"] == [80.0, None, 80.0]
    assert series["archive_mb"] == [0.0, 3.0, 0.0]
    assert all(len(values) == 3 for values in series.values())


def test_the_fitted_line_spans_the_trend_in_minutes() -> None:
    trend = trend_of([(600.0, 10.0), (1200.0, 20.0), (1800.0, 30.0)])
    xs, ys = fitted_line(trend, 1800)
    assert xs == pytest.approx([10.0, 30.0]) and ys == pytest.approx([10.0, 30.0])
    assert fitted_line(trend_of([]), 1800) is None
