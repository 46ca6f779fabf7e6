"""`natsbank demo`: the main job, end to end, on a cluster of its own that it stops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import Cli
from tests.e2e.processes import live_nats_servers, processes_with_env


def test_the_demo_settles_every_transfer_and_leaves_nothing_running(
    cli: Cli, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"  # the demo keeps its cluster in a temporary directory
    scratch.mkdir()
    natsbank = cli.with_env(TMPDIR=str(scratch))

    done = natsbank("demo", "--transfers", "300", "--nodes", "1", "--json")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["audit_ok"] is True and summary["violations"] == {}
    assert summary["unfinished"] == 0
    assert summary["transfers"] == summary["acked"] == summary["completed"] == 300
    assert summary["outcomes"]["OK"] > 0 and summary["outcomes"]["REJECTED"] > 0
    assert sum(summary["outcomes"].values()) == 300
    assert sum(summary["causes"].values()) == summary["outcomes"]["REJECTED"]
    assert processes_with_env("TMPDIR", str(scratch)) == []  # nats-server, serve: all gone
    assert live_nats_servers(scratch) == [] and live_nats_servers(cli.home) == []
    assert list(scratch.iterdir()) == []
    assert natsbank("dev", "status", "--json").returncode == 1


@pytest.mark.parametrize("store", ["independent", "shared"])
def test_the_demo_with_postgres_projects_every_outcome_and_checks_i6(
    cli: Cli, tmp_path: Path, store: str
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    natsbank = cli.with_env(TMPDIR=str(scratch))

    done = natsbank(
        "demo", "--transfers", "300", "--nodes", "1", "--postgres", "--store", store, "--json"
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["audit_ok"] is True and summary["unfinished"] == 0
    assert summary["store"] == store
    projection = summary["projection"]
    assert projection["i6_ok"] is True and projection["differences"] == []
    assert projection["dsn"].startswith("postgresql://") and "psql" in projection["psql"]
    assert processes_with_env("TMPDIR", str(scratch)) == []  # projector, postgres: all gone
    assert list(scratch.iterdir()) == []
