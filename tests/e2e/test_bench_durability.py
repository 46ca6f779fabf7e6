"""`natsbank bench --rate-sweep` (latency against offered rate) and `--sync-interval`, through
the real CLI on one node. No figure is held to a target: a benchmark reports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import assert_one_line_error, cli_for


def test_a_rate_sweep_offers_shares_of_the_peak_and_draws_the_curve(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)
    chart = tmp_path / "bench.png"
    done = natsbank(
        "bench",
        *("--transfers", "200", "--nodes", "1", "--participants", "3", "--skip-postgres"),
        *("--mode", "jetstream", "--loss", "0", "--durability", "always"),
        *("--rate-sweep", "25,50", "--point-seconds", "1", "--chart", str(chart), "--json"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (peak,) = report["runs"]
    curve = report["latency_curve"]
    assert curve["durability"] == "always" and curve["sync_interval"] == "always"
    assert curve["peak_per_s"] == peak["throughput_per_s"] > 0
    assert [p["percent"] for p in curve["points"]] == [25, 50]
    for point in curve["points"]:
        offered = peak["throughput_per_s"] * point["percent"] / 100
        assert abs(point["offered_per_s"] - offered) <= 0.1
        assert point["transfers"] == point["completed"] >= 50  # MIN_POINT_TRANSFERS
        assert 0 < point["completed_per_s"] <= point["offered_per_s"] + 0.1
        assert 0 < point["p50_ms"] <= point["p99_ms"] <= point["p999_ms"] <= point["max_ms"]
        assert point["lost"] == 0 and point["valid"] is True
    assert curve["valid"] is True and report["valid"] is True
    assert curve["chart"] == str(tmp_path / "bench-latency.png")
    assert Path(curve["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chart" not in report  # one run: no loss sweep to draw


def test_sync_interval_pairs_that_interval_with_pgbench_fsync_on(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)
    done = natsbank(
        "bench", "--sync-interval", "1s", "--transfers", "100", "--nodes", "1",
        "--participants", "3", "--skip-postgres", "--mode", "jetstream", "--loss", "0", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["durability"] == ["sync_interval 1s"]
    (run,) = report["runs"]
    (pair,) = report["pairs"]
    assert run["sync_interval"] == pair["natsbank"]["sync_interval"] == "1s"
    assert "--sync-interval 1s " in pair["commands"][0]

    both = natsbank("bench", "--sync-interval", "1s", "--durability", "always")
    assert assert_one_line_error(both, 2) == "error: give --durability or --sync-interval, not both"
    bad = natsbank("bench", "--rate-sweep", "50", "--rate", "100", "--skip-postgres")
    assert "--rate-sweep measures the peak at full speed" in assert_one_line_error(bad, 2)
