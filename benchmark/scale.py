"""`bench --scale`: each scaled run against the 1x run of its store and mode, pure. With `--rate`
every run is offered the same rate, so a 100x run lasts 100 times longer and the ratios show
what more history costs; without it every run is pushed at once, and they show queueing too."""

from __future__ import annotations

from benchmark.archiver import fill_seconds, history_for

FIGURES = (
    "throughput_per_s",
    "p50_ms",
    "p99_ms",
    "peak_server_rss_mb",
    "peak_service_rss_mb",
    "live_subjects",
)


def _ratio(value: float, base: float) -> float | None:
    return round(value / base, 3) if base else None


def scale_summary(runs: list[dict], rate: float | None) -> list[dict]:
    """Per store and mode, every run at 0% loss by scale, with its figures over the 1x run's
    (None where there is no 1x run at 0% loss to compare with)."""
    rows = []
    groups = dict.fromkeys((r.get("store", "independent"), r["mode"]) for r in runs)
    for store, mode in groups:
        mine = sorted(
            (
                r
                for r in runs
                if (r.get("store", "independent"), r["mode"]) == (store, mode) and not r["loss"]
            ),
            key=lambda r: r.get("scale", 1),
        )
        base = next((r for r in mine if r.get("scale", 1) == 1), None)
        for run in mine:
            row = {
                "store": store,
                "mode": mode,
                "scale": run.get("scale", 1),
                "transfers": run["transfers"],
                "offered_per_s": rate,  # None: all pushed at once
                "horizon": run.get("horizon", "forever"),
                "seconds": run["seconds"],
                "horizon_filled": _filled(run),
                # With --warmup, each run's unmeasured load before it is history too.
                "warmup_transfers": run.get("warmup_transfers", 0),
                "history_transfers": run.get("history_transfers", run["transfers"]),
            }
            for figure in FIGURES:
                row[figure] = run[figure]
                row[f"{figure}_vs_1x"] = _ratio(run[figure], base[figure]) if base else None
            rows.append(row)
    return rows


def _filled(run: dict) -> bool | None:
    """Whether the run lasted long enough for its live ledger to reach a steady state (the
    horizon full, the archiver moving periods out); None without a horizon. A 1x run that did
    not compares a ledger that never archived with longer ones that did."""
    fill_s = fill_seconds(history_for(run.get("horizon", "forever")))
    return run["seconds"] + run.get("warmup_s", 0.0) >= fill_s if fill_s else None
