"""A soak's report as a stable dict: its settings, every sample, each series' trend and verdict,
the totals, and the restart and audit times on the empty ledger, with the horizon full before
the load, and after it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from benchmark.soak_load import LoadTotals
from benchmark.soak_restarts import RestartTimes
from benchmark.soak_series import (
    FLAT_PCT_PER_10MIN_MAX,
    TREND_FROM_SHARE,
    Sample,
    all_flat,
    trends,
)
from benchmark.soak_windows import SoakWindows


@dataclass(frozen=True)
class Timings:
    """The restarts and the audit, timed three times: on the empty ledger (None without a
    horizon: then "before" is that time), once a first load filled the horizon, after the soak."""

    empty: RestartTimes | None
    before: RestartTimes
    after: RestartTimes


@dataclass(frozen=True)
class FillFigures:
    """The load that filled the horizon before the "before" timings."""

    seconds: float
    offered: int
    acked: int
    samples: int

    @classmethod
    def of(cls, fill: tuple[list[Sample], LoadTotals] | None, seconds: float) -> FillFigures | None:
        if fill is None:
            return None
        samples, load = fill
        return cls(seconds, load.submitted, load.acked, len(samples))


@dataclass(frozen=True)
class SoakMeasured:
    samples: list[Sample]
    windows: SoakWindows
    load: LoadTotals
    timings: Timings
    fill: FillFigures | None
    machine: dict


def restart_ratios(before: RestartTimes, after: RestartTimes) -> dict[str, float | None]:
    """After over before, per timing; None where before took no measurable time."""
    pairs = {
        "service_s": (before.service_s, after.service_s),
        "node_s": (before.node_s, after.node_s),
        "audit_s": (before.audit_s, after.audit_s),
    }
    return {name: round(a / b, 3) if b > 0 else None for name, (b, a) in pairs.items()}


def soak_report(settings: dict, measured: SoakMeasured, commands: list[str]) -> dict:
    duration_s = settings["duration_s"]
    windows, load = measured.windows, measured.load
    found = trends(measured.samples, duration_s)
    in_soak = [s for s in measured.samples if s.t_s <= duration_s + 1e-9]
    completed_in_soak = sum(s.completed_per_s for s in in_soak) * windows.every_s
    done = windows.completed_total
    histogram = windows.latency_ms
    totals = {
        "offered": load.submitted,
        "acked": load.acked,
        "acked_read": windows.acked_total,  # the ACKs the sampler read from the ledger
        "completed": done,
        "in_flight_at_end": len(windows.pending),
        "orphans_dropped": windows.orphans_dropped,
        "load_seconds": round(load.seconds, 3),
        "completed_per_s": round(completed_in_soak / duration_s, 1),
        "p50_ms": float(histogram.get_value_at_percentile(50)) if done else None,
        "p99_ms": float(histogram.get_value_at_percentile(99)) if done else None,
        "max_ms": float(histogram.get_max_value()) if done else None,
    }
    timings = measured.timings
    before, after = timings.before, timings.after
    empty = dataclasses.asdict(timings.empty) if timings.empty else None
    return {
        "soak": settings,
        "samples": [dataclasses.asdict(s) for s in measured.samples],
        "trend_from_s": round(duration_s * TREND_FROM_SHARE, 3),
        "flat_pct_per_10min_max": FLAT_PCT_PER_10MIN_MAX,
        "trends": {name: dataclasses.asdict(t) for name, t in found.items()},
        "flat": all_flat(found),
        "totals": totals,
        "fill": dataclasses.asdict(measured.fill) if measured.fill else None,
        "restarts": {
            "empty": empty,  # on the empty ledger; None when "before" is that time
            "before": dataclasses.asdict(before),
            "after": dataclasses.asdict(after),
            "after_over_before": restart_ratios(before, after),
        },
        "valid": before.audit_ok
        and after.audit_ok
        and (timings.empty is None or timings.empty.audit_ok)
        and not windows.pending
        and load.acked == load.submitted,
        "commands": commands,
        "machine": measured.machine,
    }
