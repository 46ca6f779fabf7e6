"""Latency under load: the first point again, paced at a share of the peak it reached at full
speed, one fresh cluster per offered rate, at the headline durability. What a bank sees is the
latency at the rate it offers, not with the whole workload queued at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmark.options import BenchOptions, Hooks, Point
from benchmark.point import run_point

MIN_POINT_TRANSFERS = 50  # below this a p99.9 is the maximum of a handful
MAX_SWEEP_PERCENT = 200.0  # past the peak is overload; far past it only a longer queue


def run_curve(options: BenchOptions, point: Point, peak: dict, workdir: Path, hooks: Hooks) -> dict:
    """Each percent of `peak`'s throughput offered for `options.point_seconds`."""
    peak_per_s = peak["throughput_per_s"]
    points = []
    for percent in options.rate_sweep:
        offered = peak_per_s * percent / 100
        transfers = max(MIN_POINT_TRANSFERS, round(offered * options.point_seconds))
        paced = dataclasses.replace(options, rate=offered, transfers=transfers, scales=())
        hooks.phase(
            f"natsbank latency curve: {percent:g}% of the peak, {offered:,.0f} transfers/s "
            f"offered, {transfers:,} transfers"
        )
        run, _ = run_point(paced, point, workdir, hooks, tag=f"rate-{percent:g}")
        points.append(_curve_point(percent, offered, run))
    return {
        "durability": options.durabilities[0].name,
        "sync_interval": peak["sync_interval"],
        "peak_per_s": peak_per_s,
        "peak_from": peak["name"],
        "point_seconds": options.point_seconds,
        "points": points,
        "valid": all(p["valid"] for p in points),
    }


def _curve_point(percent: float, offered: float, run: dict) -> dict:
    return {
        "percent": percent,
        "offered_per_s": round(offered, 1),
        # Over the longer of first ACK to last final and the offered window: a short point's
        # span leaves out its first pacing gap, which would put completed above offered.
        "completed_per_s": round(
            run["completed"] / max(run["seconds"], run["transfers"] / offered), 1
        ),
        "transfers": run["transfers"],
        "completed": run["completed"],
        "seconds": run["seconds"],
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        "p999_ms": run["p999_ms"],
        "max_ms": run["max_ms"],
        "lost": run["lost"],
        "audit_ok": run["audit_ok"],
        "valid": run["valid"],
    }
