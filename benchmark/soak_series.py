"""A soak's samples over time, pure: the sample, the series a chart draws, and whether each
series is flat (a least-squares slope over the last two thirds of the soak).

"Flat" is a verdict computed from the run, never assumed: the slope is reported as % change per
10 minutes relative to the series' mean over the same span, and a series is flat when that is
at most FLAT_PCT_PER_10MIN_MAX (a downward trend is flat: the target is no upward trend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FLAT_PCT_PER_10MIN_MAX = 5.0  # a judged series rising faster than this is not flat
TREND_FROM_SHARE = 1 / 3  # the first third of the soak is warm-up: not in the trend
TREND_SAMPLES_MIN = 3  # fewer samples in the span: no verdict
TEN_MINUTES_S = 600.0
# Series the targets are about (live state, memory, tail latency), and the others,
# whose slope is reported without a verdict (the archive is meant to grow).
JUDGED = ("live_subjects", "live_messages", "server_rss_mb", "service_rss_mb", "p99_ms")
REPORTED = ("completed_per_s", "acked_per_s", "p50_ms", "archive_mb", "archiver_rss_mb")


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the soak's load began, at the end of the window
    acked_per_s: float  # offered: submissions ACKed in the window
    completed_per_s: float  # final on both sides in the window
    p50_ms: float | None  # ACK to final, of the transfers completed in the window
    p99_ms: float | None
    server_rss_mb: dict[str, float]  # per nats-server node
    service_rss_mb: float  # summed over the `serve` processes
    archiver_rss_mb: float  # 0 without an archiver
    live_subjects: int  # summed over the ledger streams, as their leaders report them
    live_messages: int
    archive_bytes: int  # the archive's object store stream; 0 while it does not exist
    in_flight: int  # ACKed and not final yet, as far as read
    read_lag_s: float = 0.0  # how long after the window's end its transfers were read

    def value(self, name: str) -> float | None:
        """A series' value in this sample: the scalar fields, the server total, the archive
        in MB, and `server_rss_mb.<node>`."""
        if name == "server_rss_mb":
            return round(sum(self.server_rss_mb.values()), 1)
        if name == "archive_mb":
            return round(self.archive_bytes / 2**20, 3)
        if name.startswith("server_rss_mb."):
            return self.server_rss_mb.get(name.split(".", 1)[1])
        return getattr(self, name)


@dataclass(frozen=True)
class Trend:
    samples: int
    mean: float | None
    slope_per_s: float | None
    intercept: float | None  # of the fitted line, at t_s = 0
    pct_per_10min: float | None  # None: too few samples, or a mean of 0 with a rising slope
    verdict: str  # flat, rising, too few samples; for series not judged, the same words
    judged: bool = field(default=True)


def least_squares(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(slope, intercept) of the line that fits the points best; needs two distinct x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        raise ValueError("a slope needs points at two different times at least")
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return slope, mean_y - slope * mean_x


def trend_of(points: list[tuple[float, float]], *, judged: bool = True) -> Trend:
    if len(points) < TREND_SAMPLES_MIN or len({x for x, _ in points}) < 2:
        return Trend(len(points), None, None, None, None, "too few samples", judged)
    slope, intercept = least_squares(points)
    mean = sum(y for _, y in points) / len(points)
    if mean:
        pct: float | None = slope * TEN_MINUTES_S / abs(mean) * 100
        rising = pct > FLAT_PCT_PER_10MIN_MAX
    else:
        pct = 0.0 if slope <= 0 else None
        rising = slope > 0
    return Trend(
        samples=len(points),
        mean=round(mean, 3),
        slope_per_s=slope,
        intercept=intercept,
        pct_per_10min=None if pct is None else round(pct, 2),
        verdict="rising" if rising else "flat",
        judged=judged,
    )


def trends(samples: list[Sample], duration_s: float) -> dict[str, Trend]:
    """Each series' trend over the last two thirds of the soak (drain samples excluded)."""
    start = duration_s * TREND_FROM_SHARE
    span = [s for s in samples if start <= s.t_s <= duration_s + 1e-9]
    found = {}
    for name in (*JUDGED, *REPORTED):
        points = [(s.t_s, v) for s in span if (v := s.value(name)) is not None]
        found[name] = trend_of(points, judged=name in JUDGED)
    return found


def all_flat(found: dict[str, Trend]) -> bool | None:
    """True if every judged series is flat, False if one rises, None if one has no verdict."""
    verdicts = [t.verdict for t in found.values() if t.judged]
    if "rising" in verdicts:
        return False
    return None if "too few samples" in verdicts else True


def chart_series(samples: list[Sample]) -> dict[str, list[float | None]]:
    """What the chart draws, by name: `t_min`, then every series (per node too)."""
    nodes = sorted({name for s in samples for name in s.server_rss_mb})
    names = [*JUDGED, *REPORTED, *(f"server_rss_mb.{n}" for n in nodes)]
    series: dict[str, list[float | None]] = {"t_min": [round(s.t_s / 60, 4) for s in samples]}
    for name in names:
        series[name] = [s.value(name) for s in samples]
    return series


def fitted_line(trend: Trend, duration_s: float) -> tuple[list[float], list[float]] | None:
    """The trend's line over the span it was fitted on, in minutes, for the chart."""
    if trend.slope_per_s is None or trend.intercept is None:
        return None
    xs = [duration_s * TREND_FROM_SHARE, duration_s]
    ys = [trend.intercept + trend.slope_per_s * x for x in xs]
    return [x / 60 for x in xs], [y if math.isfinite(y) else 0.0 for y in ys]
