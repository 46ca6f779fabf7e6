"""`natsbank health`, the containers' exec probe: exit 0 and one line when NATS, JetStream, the
ledger leaders and the participant's inbox are there; exit 1 and one line when not; exit 2 when
there is nothing configured to check."""

from __future__ import annotations

import json
from pathlib import Path

from eventsource.adapters.cluster import ClusterInfo, LocalCluster
from tests.e2e.cli import Cli, assert_one_line_error
from tests.e2e.polling import until_exit_0

# The streams and the inbox consumers were created a moment before: each R3 group elects its
# leader first, and a probe until then says unhealthy.
HEALTHY_WITHIN_S = 60.0
PROBE_TIMEOUT = ("--timeout", "20")


def test_a_three_node_cluster_with_its_streams_is_healthy(cli: Cli, nats3: ClusterInfo) -> None:
    natsbank = cli.with_env(NATS_URL=nats3.url)
    natsbank.json("streams", "init", "--json")
    natsbank.json("accounts", "open", "bank-a", "alice", "--json")

    probe = until_exit_0(
        lambda: natsbank("health", "--participant", "bank-a", *PROBE_TIMEOUT),
        within=HEALTHY_WITHIN_S,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stderr == ""
    [line] = probe.stdout.splitlines()
    assert line.startswith("healthy: ") and "KV_ledger_0 leader n" in line and "bank-a" in line

    as_json = until_exit_0(
        lambda: natsbank("health", "--participant", "bank-a", "--json", *PROBE_TIMEOUT),
        within=HEALTHY_WITHIN_S,
    )
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["healthy"] is True
    assert report["participants"] == ["bank-a"]
    assert report["leaders"]["KV_ledger_0"] in {"n1", "n2", "n3"}


def test_an_unknown_participant_is_unhealthy(cli: Cli, nats1: ClusterInfo) -> None:
    natsbank = cli.with_env(NATS_URL=nats1.url)
    natsbank.json("streams", "init", "--json")
    line = assert_one_line_error(natsbank("health", "-p", "bank-zz"), 1)
    assert "participant bank-zz is not registered" in line
    assert natsbank("health").returncode == 0  # the cluster itself is fine


def test_a_cluster_without_streams_is_unhealthy(cli: Cli, nats1: ClusterInfo) -> None:
    line = assert_one_line_error(cli.with_env(NATS_URL=nats1.url)("health"), 1)
    assert "streams init" in line


def test_a_stopped_cluster_is_unhealthy(cli: Cli, tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "gone", nodes=1) as info:
        natsbank = cli.with_env(NATS_URL=info.url)
        assert natsbank.json("streams", "init", "--json")
    # The block has stopped the server: the same URL now has nobody behind it.
    line = assert_one_line_error(natsbank("health", "--participant", "bank-a"), 1)
    assert line.startswith("error: unhealthy: cannot connect to NATS")

    as_json = natsbank("health", "--json")
    assert as_json.returncode == 1 and "Traceback" not in as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["healthy"] is False and "cannot connect" in report["reason"]


def test_no_cluster_configured_is_a_config_error(cli: Cli) -> None:
    line = assert_one_line_error(cli("health"), 2)
    assert "NATS_URL" in line
