"""`natsbank bench` through the real CLI: a tiny run on one node, and a short pgbench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _bench(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NATSBANK_HOME": str(home)}
    env.pop("NATS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "eventsource.cli", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_small_bench_reports_every_figure_and_a_clean_audit(tmp_path: Path) -> None:
    done = _bench(
        tmp_path,
        *("--transfers", "300", "--nodes", "1", "--instances", "1", "--participants", "3"),
        *("--mode", "jetstream", "--loss", "0", "--durability", "always"),
        *("--pg-seconds", "2", "--pg-scale", "1", "--json"),
    )
    assert done.returncode == 0, done.stderr

    report = json.loads(done.stdout)
    baseline, (run,) = report["baseline"], report["runs"]
    assert baseline["name"] == "PostgreSQL pgbench TPC-B"
    assert baseline["tps"] > 0
    assert baseline["scale"] == 1 and baseline["seconds"] == 2
    assert run["name"] == "natsbank jetstream R1" and run["loss"] == 0
    assert run["transfers"] == run["acked"] == run["completed"] == 300
    assert sum(run["outcomes"].values()) == 300
    assert run["lost"] == 0
    assert run["double_applied"] == 0
    assert run["audit_ok"] is True and run["valid"] is True and report["valid"] is True
    assert run["throughput_per_s"] > 0
    assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["p999_ms"] <= run["max_ms"]
    assert run["ledger_messages"] > 300
    assert run["ledger_messages_per_transfer"] == pytest.approx(run["ledger_messages"] / 300, 0.01)
    assert report["ratio"] == pytest.approx(run["throughput_per_s"] / baseline["tps"], abs=1e-4)
    assert report["machine"]["cpus"] == os.cpu_count()
    commands = report["commands"]
    assert commands[0].startswith("natsbank bench --transfers 300")
    assert any("pgbench -i -s 1 " in c for c in commands)
    assert any("pgbench -c 8 -j 2 -T 2 " in c for c in commands)
    assert report["durability"] == ["always"] and run["sync_interval"] == "always"
    (pair,) = report["pairs"]
    assert pair["postgres"] == baseline and pair["ratio"] == report["ratio"]


def test_each_pair_compares_at_equal_durability_read_back_from_the_servers(
    tmp_path: Path,
) -> None:
    done = _bench(
        tmp_path,
        *("--transfers", "200", "--nodes", "1", "--participants", "3"),
        *("--mode", "jetstream", "--loss", "0", "--pg-seconds", "1", "--pg-scale", "1", "--json"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["durability"] == ["always", "default"]  # the default: the durable pair first
    durable, like_for_like = report["pairs"]
    runs = report["runs"]
    for pair, sync_interval, synchronous_commit in (
        (durable, "always", "on"),
        (like_for_like, "default (2m)", "off"),
    ):
        nats, pg = pair["natsbank"], pair["postgres"]
        run = runs[nats["run"]]
        assert run["durability"] == pair["durability"] and run["valid"] is True
        assert nats["sync_interval"] == run["sync_interval"] == sync_interval
        assert nats["throughput_per_s"] == run["throughput_per_s"] > 0
        # What pgbench's sessions ran with, as the server reported it to one opened alike.
        assert (pg["synchronous_commit"], pg["fsync"]) == (synchronous_commit, "on")
        assert pg["command"].startswith(f"PGOPTIONS='-c synchronous_commit={synchronous_commit}' ")
        assert pair["ratio"] == pytest.approx(nats["throughput_per_s"] / pg["tps"], abs=1e-4)
        assert run["vs_postgres"] == pair["ratio"]
        reproduce, *pgbench = pair["commands"]
        assert reproduce.startswith(f"natsbank bench --durability {pair['durability']} ")
        assert pgbench == [pg["init_command"], pg["command"]]
    assert durable["durability"] == "always" and report["ratio"] == durable["ratio"]


def test_skip_postgres_leaves_the_ratio_null(tmp_path: Path) -> None:
    done = _bench(
        tmp_path, "--transfers", "100", "--nodes", "1", "--instances", "1", "--skip-postgres",
        "--mode", "jetstream", "--loss", "0", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["baseline"] is None and report["ratio"] is None
    assert report["runs"][0]["lost"] == 0 and report["runs"][0]["audit_ok"] is True
    assert "projectors" not in report["runs"][0]  # --projector none is the default
    # The bench's own reading after the work (the completion scan reads each transfer's four
    # record events, then the audit reads the ledger) is counted apart from the work's traffic.
    run = report["runs"][0]
    assert run["bench_read_messages_per_transfer"] >= 4
    assert run["bench_read_messages"] == pytest.approx(
        run["bench_read_messages_per_transfer"] * run["completed"], rel=0.01
    )
    # Where the services' time went, per stage (services/stopwatch.py), summed over them.
    timing = report["runs"][0]["time_s"]
    assert set(timing["seconds"]) == {"fetch", "decode", "decide", "commit", "send", "ack"}
    assert timing["seconds"]["commit"] > 0 and timing["seconds"]["decide"] > 0
    assert timing["busy_s"] == pytest.approx(
        sum(v for stage, v in timing["seconds"].items() if stage != "fetch"), abs=0.01
    )
    assert sum(timing["share"].values()) == pytest.approx(1.0, abs=0.01)
    # Still both durabilities, natsbank's side of each pair measured.
    durable, like_for_like = report["pairs"]
    assert [r["sync_interval"] for r in report["runs"]] == ["always", "default (2m)"]
    for index, pair in enumerate((durable, like_for_like)):
        assert pair["postgres"] is None and pair["ratio"] is None
        assert pair["natsbank"]["run"] == index and pair["natsbank"]["valid"] is True
        assert pair["commands"][0].endswith(" --skip-postgres")
    assert report["latency_curve"] is None


def test_projector_figures_come_from_a_phase_after_the_run(tmp_path: Path) -> None:
    done = _bench(
        tmp_path, "--transfers", "200", "--nodes", "1", "--skip-postgres", "--projector", "both",
        "--mode", "jetstream", "--loss", "0", "--durability", "default", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["completed"] == 200 and run["valid"] is True
    postgres, sqlite = run["projectors"]
    assert (postgres["backend"], sqlite["backend"]) == ("postgres", "sqlite")
    for projector in (postgres, sqlite):
        # Every state event of the ledger applied exactly once, and the rows equal the state.
        assert projector["events_applied"] == projector["ledger_state_events"]
        assert projector["dead_letters"] == 0
        assert projector["i6_ok"] is True and projector["i6_differences"] == []
        assert projector["audit_ok"] is True and projector["valid"] is True
        live = projector["live"]
        assert live["transfers"] == 200 and live["transfers_per_s"] > 0
        assert live["events"] > 200 and live["events_per_s"] > 0
        assert 0 <= live["lag_events_p99"] <= live["lag_events_max"]
        assert 0 <= live["lag_seconds_p99"] <= live["lag_seconds_max"]
        assert live["catch_up_after_final_s"] >= 0
        assert set(projector["catch_up"]) == {"events", "seconds", "events_per_s"}
    # The second phase projected the first phase's transfers too (its backlog) and its own.
    assert (
        sqlite["ledger_state_events"] == postgres["ledger_state_events"] + sqlite["live"]["events"]
    )
    assert "--dsn" in postgres["command"] and "--sqlite" in sqlite["command"]


def test_the_sweep_compares_both_modes_under_loss_and_draws_the_chart(tmp_path: Path) -> None:
    chart = tmp_path / "sweep.png"
    done = _bench(
        tmp_path, "--transfers", "300", "--nodes", "1", "--skip-postgres", "--loss", "0,0.2",
        "--resend-after", "0.5", "--durability", "default", "--chart", str(chart), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    runs = {(r["mode"], r["loss"]): r for r in report["runs"]}
    assert set(runs) == {("jetstream", 0), ("jetstream", 0.2), ("core", 0), ("core", 0.2)}
    dropped = {key: run["faults_injected"].get("drop", 0) for key, run in runs.items()}
    for (mode, loss), run in runs.items():
        assert run["completed"] == 300 and run["lost"] == 0 and run["double_applied"] == 0
        assert run["audit_ok"] is True and run["valid"] is True, (mode, loss)
        assert run["protocol_messages"] > 0 and run["server_messages"] > run["protocol_messages"]
        assert run["server_idle_messages_per_s"] >= 0
        assert run["throughput_per_s"] > 0 and run["throughput_99_per_s"] > 0
        if loss == 0:
            assert dropped[mode, loss] == 0, (mode, run["faults_injected"])
        else:
            assert sum(run["faults_injected"].values()) > 0, (mode, run["faults_injected"])
        # A lost message must have been sent again: a server redelivery or an endpoint replay.
        if dropped[mode, loss]:
            assert run["redeliveries"] > 0, (mode, loss)
    # Batching leaves a few dozen protocol messages per run, so one mode may draw no loss by
    # chance; both drawing none at 20% has odds of about one in 10^5.
    assert dropped["jetstream", 0.2] + dropped["core", 0.2] > 0
    assert report["chart"] == str(chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_process_faults_kill_services_and_hold_a_receiver_back(tmp_path: Path) -> None:
    done = _bench(
        tmp_path, "--transfers", "300", "--nodes", "1", "--skip-postgres", "--mode", "core",
        "--loss", "0", "--resend-after", "0.5", "--kill-service-every", "0.5",
        "--receiver-down", "3", "--durability", "default", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    assert run["service_kills"] >= 1  # seeded: the first kill comes 0.07 s in
    assert run["completed"] == 300 and run["lost"] == 0 and run["valid"] is True
    assert run["max_ms"] >= 2000  # the late receiver's transfers waited for it


def test_a_bad_loss_rate_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--loss", "0,1.5", "--json")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --loss rates must be in [0, 1), e.g. 0,0.01,0.1"
    assert done.stdout == ""
