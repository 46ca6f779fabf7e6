"""`natsbank bench --warmup`: an unmeasured load at the run's rate before each run, through the
real CLI on one node. Its transfers are history (they stay in the ledger and its audit), not
figures."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import assert_one_line_error, cli_for


def test_each_scaled_run_is_measured_after_its_warm_up(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)
    done = natsbank(
        "bench", "--transfers", "60", "--rate", "60", "--warmup", "2s", "--scale", "2",
        "--nodes", "1", "--participants", "3", "--skip-postgres", "--mode", "jetstream",
        "--loss", "0", "--durability", "default", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is True
    one, two = sorted(report["runs"], key=lambda run: run.get("scale", 1))
    for run, measured in ((one, 60), (two, 120)):
        assert run["warmup_s"] == 2.0 and run["warmup_transfers"] == 120  # 2 s at 60/s
        assert run["transfers"] == run["acked"] == run["completed"] == measured
        assert run["history_transfers"] == 120 + measured
        assert run["audit_ok"] is True and run["lost"] == 0
    rows = {row["scale"]: row for row in report["scales"]}
    assert rows[2]["history_transfers"] == 240 and rows[1]["warmup_transfers"] == 120


def test_a_warm_up_needs_a_rate_and_a_duration(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)
    no_rate = natsbank("bench", "--warmup", "5s", "--skip-postgres")
    assert assert_one_line_error(no_rate, 2) == (
        "error: --warmup needs --rate (the warm-up offers the measured run's rate)"
    )
    bad = natsbank("bench", "--warmup", "soon", "--rate", "10", "--skip-postgres")
    assert "--warmup: 'soon' is not a duration" in assert_one_line_error(bad, 2)
