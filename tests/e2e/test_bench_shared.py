"""`natsbank bench --store independent,shared`: both stores on the same workload in one run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.cli import assert_one_line_error, cli_for


def test_bench_compares_the_independent_and_the_shared_store(tmp_path: Path) -> None:
    natsbank = cli_for(tmp_path)
    done = natsbank(
        "bench",
        *("--transfers", "300", "--nodes", "1", "--participants", "3", "--skip-postgres"),
        *("--mode", "jetstream", "--loss", "0", "--store", "independent,shared"),
        *("--durability", "default"),
        *("--chart", str(tmp_path / "chart.png"), "--json"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    independent, shared = report["runs"]
    assert (independent["store"], shared["store"]) == ("independent", "shared")
    assert shared["name"] == "natsbank shared store R1"
    for run in (independent, shared):
        assert run["transfers"] == run["acked"] == run["completed"] == 300
        assert run["outcomes"] == independent["outcomes"]  # the same workload, same outcomes
        assert run["lost"] == run["double_applied"] == 0
        assert run["audit_ok"] is True and run["valid"] is True
        assert 0 < run["p50_ms"] <= run["p99_ms"]
        assert run["server_messages_per_transfer"] > 0
    assert independent["protocol_messages"] > 0
    assert shared["protocol_messages"] == 0  # no posting, result or confirm: one step
    assert shared["ledger_messages_per_transfer"] < independent["ledger_messages_per_transfer"]
    lines = report["protocol_lines"]
    assert 0 < lines["shared"]["own"] < lines["independent"]["own"]
    assert lines["common"]["total"] > 0
    assert any("--store shared" in c for c in report["commands"])

    refused = natsbank("bench", "--store", "pooled", "--skip-postgres")
    assert "--store takes independent, shared" in assert_one_line_error(refused, 2)
