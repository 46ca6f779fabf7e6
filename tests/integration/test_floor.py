"""`python -m benchmark.floor`, the commits alone (issue 14): a tiny run on a real server
completes every transfer, and its counts are those of the pattern it claims to measure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FLOOR_TIMEOUT_S = 240  # a small run takes seconds; this is for a loaded machine


@pytest.mark.parametrize("hops", ["memory", "consumers"])
def test_the_floor_completes_every_transfer_and_counts_its_messages(hops):
    command = [
        sys.executable, "-m", "benchmark.floor", "--nodes", "1", "--sync", "default",
        "--transfers", "300", "--shares", "50", "--point-seconds", "0.5", "--hops", hops,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=FLOOR_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)

    setup = (report["nodes"], report["replicas"], report["sync_interval"], report["hops"])
    assert setup == (1, 1, "default", hops)
    peak, [point] = report["peak"], report["curve"]
    assert peak["transfers"] == 300
    assert point["share_of_peak"] == 50
    assert point["transfers"] >= 200  # max(200, half the peak's rate for 0.5 s), split in two
    for figures in (peak, point):
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["p999_ms"]
        assert figures["completed_per_s"] > 0
        # a submission, four record writes, and one to four account writes per group
        assert 5 < figures["messages_per_transfer"] <= 9
        assert 0 < figures["commits_per_transfer"] <= 4


@pytest.mark.parametrize(
    "bad", [["--transfers", "1"], ["--shares", "0,x"], ["--point-seconds", "-1"], ["--sync", "x"]]
)
def test_a_bad_argument_is_one_line_and_starts_nothing(bad):
    command = [sys.executable, "-m", "benchmark.floor", *bad]
    done = subprocess.run(command, capture_output=True, text=True, timeout=FLOOR_TIMEOUT_S)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("floor.py: error: argument ")
