"""`natsbank bench --soak` through the real CLI: a short soak on one node reports every sample's
figures, a verdict per series and the restarts before and after, and draws the chart. No
figure is held to a target here: a benchmark reports, it does not assert timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.soak_series import JUDGED, REPORTED

SAMPLE_FIELDS = {
    "t_s", "acked_per_s", "completed_per_s", "p50_ms", "p99_ms", "server_rss_mb",
    "service_rss_mb", "archiver_rss_mb", "live_subjects", "live_messages", "archive_bytes",
    "in_flight", "read_lag_s",
}  # fmt: skip


def _bench(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATSBANK_HOME": str(home)}
    env.pop("NATS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "eventsource.cli", "bench", *args],
        env=env,
        cwd=home,  # its default natsbank-soak.json/.png: never over the repository's own
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_short_soak_samples_every_figure_and_draws_them(tmp_path: Path) -> None:
    chart = tmp_path / "soak.png"
    done = _bench(
        tmp_path, "--soak", "40s", "--rate", "50", "--horizon", "forever", "--sample-every", "5s",
        "--nodes", "1", "--processes", "1", "--participants", "3", "--skip-postgres",
        "--chart", str(chart), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    report = json.loads(done.stdout)
    assert json.loads((tmp_path / "soak.json").read_text()) == report
    soak, samples = report["soak"], report["samples"]
    assert (soak["duration_s"], soak["rate"], soak["horizon"]) == (40, 50, "forever")
    assert soak["archiver"] is False and soak["nodes"] == 1
    assert len(samples) >= 8  # one per 5 s of load, then any drain
    assert all(set(sample) == SAMPLE_FIELDS for sample in samples)
    assert [s["t_s"] for s in samples[:8]] == [5.0 * n for n in range(1, 9)]
    assert all(set(s["server_rss_mb"]) == {"n1"} and s["server_rss_mb"]["n1"] > 0 for s in samples)
    assert all(s["service_rss_mb"] > 0 and s["archiver_rss_mb"] == 0 for s in samples)
    assert all(s["archive_bytes"] == 0 for s in samples)  # forever: nothing is archived
    # Everything is kept live, so the live ledger only grows.
    live = [s["live_subjects"] for s in samples]
    assert live == sorted(live) and live[-1] > live[0] > 0
    assert sum(s["acked_per_s"] for s in samples) * 5 == pytest.approx(report["totals"]["acked"])

    totals = report["totals"]
    assert totals["offered"] == totals["acked"] == totals["acked_read"] == totals["completed"]
    assert totals["completed"] == 2000 and totals["in_flight_at_end"] == 0
    assert set(report["trends"]) == {*JUDGED, *REPORTED}
    for name, trend in report["trends"].items():
        assert trend["verdict"] in {"flat", "rising"}, name
        assert trend["judged"] is (name in JUDGED)
    assert report["flat"] in (True, False)

    restarts = report["restarts"]
    for when in ("before", "after"):
        times = restarts[when]
        assert times["service_s"] > 0 and times["node_s"] > 0 and times["audit_s"] > 0
        assert times["node"] == "n1" and times["audit_ok"] is True
    assert set(restarts["after_over_before"]) == {"service_s", "node_s", "audit_s"}
    assert report["valid"] is True
    assert report["commands"][0].startswith("natsbank bench --soak 40s --rate 50")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_soak_needs_a_rate(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--soak", "1m", "--skip-postgres", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --soak needs --rate (transfers/s): a soak offers a steady rate"
    )


def test_with_a_horizon_the_timings_before_the_soak_come_once_a_first_load_filled_it(
    tmp_path: Path,
) -> None:
    done = _bench(
        tmp_path, "--soak", "10s", "--rate", "50", "--horizon", "8s", "--sample-every", "5s",
        "--nodes", "1", "--processes", "1", "--participants", "3", "--skip-postgres",
        "--chart", str(tmp_path / "soak.png"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    report = json.loads(done.stdout)
    assert report["soak"]["archiver"] is True and report["soak"]["archiver_pace"] == 0.75
    assert any(" archive run --every 4 --pace 0.75" in c for c in report["commands"])
    fill = report["fill"]
    assert fill["seconds"] == 8 + 2 + 2 * 4  # horizon, clock skew, two periods
    assert fill["offered"] == fill["acked"] == 18 * 50 and fill["samples"] >= 3
    restarts = report["restarts"]
    for when in ("empty", "before", "after"):
        assert restarts[when]["audit_ok"] is True and restarts[when]["audit_s"] > 0
    # The soak's own windows count the soak's transfers only, not the fill's.
    totals = report["totals"]
    assert totals["offered"] == totals["acked_read"] == totals["completed"] == 500
    assert report["samples"][-1]["archive_bytes"] > 0  # the fill's transfers left the live ledger
    assert report["valid"] is True
