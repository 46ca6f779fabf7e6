"""`bench --scale`: every scaled run is compared with the 1x run of its own store and mode."""

from __future__ import annotations

import pytest

from benchmark.scale import scale_summary


def run(mode: str, scale: int, tps: float, server_mb: float, *, loss: float = 0.0, **more) -> dict:
    return {
        "mode": mode, "scale": scale, "loss": loss, "transfers": 1000 * scale,
        "seconds": 10.0 * scale, "throughput_per_s": tps, "p50_ms": 20.0, "p99_ms": 100.0,
        "peak_server_rss_mb": server_mb, "peak_service_rss_mb": 50.0, "live_subjects": 100 * scale,
        **more,
    }  # fmt: skip


def test_each_scale_is_divided_by_the_1x_run_of_its_mode() -> None:
    runs = [
        run("jetstream", 1, 100.0, 400.0),
        run("core", 1, 80.0, 300.0),
        run("jetstream", 1, 50.0, 999.0, loss=0.1),  # a loss point: not a base, not a row
        run("jetstream", 10, 95.0, 440.0),
        run("core", 10, 40.0, 600.0),
    ]
    rows = scale_summary(runs, rate=100.0)

    assert [(r["mode"], r["scale"]) for r in rows] == [
        ("jetstream", 1), ("jetstream", 10), ("core", 1), ("core", 10),
    ]  # fmt: skip
    jetstream_10x, core_10x = rows[1], rows[3]
    assert jetstream_10x["throughput_per_s_vs_1x"] == pytest.approx(0.95)
    assert jetstream_10x["peak_server_rss_mb_vs_1x"] == pytest.approx(1.1)
    assert jetstream_10x["peak_service_rss_mb_vs_1x"] == 1.0
    assert core_10x["throughput_per_s_vs_1x"] == 0.5 and core_10x["peak_server_rss_mb_vs_1x"] == 2
    assert rows[0]["throughput_per_s_vs_1x"] == 1.0
    assert all(r["offered_per_s"] == 100.0 for r in rows)
    assert jetstream_10x["live_subjects_vs_1x"] == 10  # no horizon: history stays live
    assert all(r["horizon"] == "forever" for r in rows)


def test_stores_are_compared_apart_and_a_missing_1x_gives_no_ratio() -> None:
    runs = [
        run("jetstream", 1, 100.0, 400.0, loss=0.01),  # no 0% run at 1x
        run("jetstream", 10, 90.0, 500.0),
        run("jetstream", 1, 200.0, 300.0, store="shared"),
        run("jetstream", 10, 100.0, 300.0, store="shared"),
    ]
    rows = scale_summary(runs, rate=None)

    independent, shared_1x, shared_10x = rows
    assert independent["store"] == "independent" and independent["scale"] == 10
    assert independent["throughput_per_s_vs_1x"] is None
    assert shared_10x["throughput_per_s_vs_1x"] == 0.5 and shared_1x["store"] == "shared"
    assert independent["offered_per_s"] is None  # all pushed at once


def test_a_run_that_ends_before_its_horizon_fills_is_marked() -> None:
    # A 40 s horizon fills in 40 + 10 (clock skew) + 2 * 20 (periods) = 90 s.
    runs = [
        run("jetstream", 1, 100.0, 400.0, horizon="40s"),  # 10 s
        run("jetstream", 10, 95.0, 440.0, horizon="40s"),  # 100 s
    ]
    rows = scale_summary(runs, rate=100.0)
    assert [r["horizon_filled"] for r in rows] == [False, True]
    assert all(r["horizon_filled"] is None for r in scale_summary([run("core", 1, 1.0, 1.0)], 1.0))


def test_a_warm_up_fills_the_horizon_and_counts_as_history() -> None:
    warm = {"warmup_s": 90.0, "warmup_transfers": 9000, "history_transfers": 10000}
    runs = [
        run("jetstream", 1, 100.0, 400.0, horizon="40s", **warm),  # 10 s measured, 100 s in all
        run("jetstream", 10, 95.0, 440.0, horizon="40s", **{**warm, "history_transfers": 19000}),
    ]
    one, ten = scale_summary(runs, rate=100.0)
    assert one["horizon_filled"] is True  # alone, 10 s would not fill it (test above)
    assert (one["warmup_transfers"], one["history_transfers"]) == (9000, 10000)
    assert ten["history_transfers"] == 19000
    cold = scale_summary([run("jetstream", 1, 100.0, 400.0)], rate=100.0)[0]
    assert (cold["warmup_transfers"], cold["history_transfers"]) == (0, 1000)
