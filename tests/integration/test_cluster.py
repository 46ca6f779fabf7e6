"""The local cluster launcher against real nats-server processes: start, fail, recover, stop."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from nats.js.api import StreamConfig

from eventsource.adapters import nats_binary
from eventsource.adapters.cluster import (
    ClusterInfo,
    LocalCluster,
    cluster_status,
    kill_node,
    load_cluster,
    resolve_nats_url,
    restart_node,
    server_list,
    start_cluster,
    stop_cluster,
)
from eventsource.adapters.nats_binary import is_nats_server, render_node_config
from eventsource.core.errors import ConfigError, InfrastructureError
from eventsource.settings import load_settings
from tests.integration.polling import until
from tests.integration.replicas import add_stream, stream_leader

# A restarted node answers its monitoring port once it has caught up; on a loaded machine a
# node's answer can miss the status's 2 s timeout: asked again, within this bound.
ALL_OK_WITHIN_S = 60.0


@asynccontextmanager
async def connected(info: ClusterInfo) -> AsyncIterator[nats.NATS]:
    nc = await nats.connect(servers=info.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield nc
    finally:
        await nc.close()


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        assert not is_nats_server(pid)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def publish_until_acked(nc: nats.NATS, subject: str, give_up_after: float = 30.0) -> int:
    """Publish until a leader acks: after a node dies, the stream needs a new leader first. A
    publish whose ack timed out may still have been stored: every retry carries the same
    Nats-Msg-Id, so the stream keeps one copy and acks the retry with that copy's sequence."""
    js = nc.jetstream()
    headers = {"Nats-Msg-Id": uuid.uuid4().hex}
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            return (await js.publish(subject, b"payload", timeout=1.0, headers=headers)).seq
        except (TimeoutError, nats.errors.Error):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_single_node_takes_jetstream_writes(nats1: ClusterInfo) -> None:
    async with connected(nats1) as nc:
        js = nc.jetstream()
        await add_stream(nc, StreamConfig(name="ORDERS", subjects=["orders.>"]))
        ack = await js.publish("orders.1", b"first")
        assert (ack.stream, ack.seq) == ("ORDERS", 1)


async def test_three_nodes_host_an_r3_stream(nats3: ClusterInfo) -> None:
    assert len(nats3.urls) == 3
    async with connected(nats3) as nc:
        js = nc.jetstream()
        await add_stream(nc, StreamConfig(name="LEDGER", subjects=["nb.>"], num_replicas=3))
        seq = await publish_until_acked(nc, "nb.0.a")  # the new stream elects its leader first
        info = await js.stream_info("LEDGER")
    assert seq == 1
    assert info.cluster is not None
    assert info.cluster.leader in {node.name for node in nats3.nodes}
    assert len(info.cluster.replicas or []) == 2


async def test_r3_stream_survives_the_loss_of_its_leader_node(nats3: ClusterInfo) -> None:
    async with connected(nats3) as nc:
        await add_stream(nc, StreamConfig(name="LEDGER", subjects=["nb.>"], num_replicas=3))
        await publish_until_acked(nc, "nb.0.a")  # the new stream elects its leader first
        leader = await stream_leader(nc, "LEDGER")
        index = [node.name for node in nats3.nodes].index(leader)
        killed_pid = nats3.nodes[index].pid

        kill_node(nats3, index)
        assert not is_nats_server(killed_pid)
        assert await publish_until_acked(nc, "nb.0.a") == 2

        restarted = await asyncio.to_thread(restart_node, nats3, index)
        assert restarted.nodes[index].pid != killed_pid
        assert load_cluster(Path(nats3.state_dir)) == restarted

        async def all_ok() -> bool:
            statuses = await asyncio.to_thread(cluster_status, restarted)
            return all(s.alive and s.jetstream == "ok" for s in statuses)

        await until(all_ok, "every node alive with JetStream ok", timeout=ALL_OK_WITHIN_S)
        assert await publish_until_acked(nc, "nb.0.a") == 3


async def test_restart_on_a_taken_port_reports_the_server_log(nats1: ClusterInfo) -> None:
    kill_node(nats1, 0)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", nats1.nodes[0].client_port))
        squatter.listen()
        with pytest.raises(InfrastructureError, match="address already in use"):
            await asyncio.to_thread(restart_node, nats1, 0)


def test_start_retries_once_when_a_picked_port_is_taken_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks: list[list[int]] = []
        free_ports = nats_binary.free_ports

        def first_pick_collides(count: int) -> list[int]:
            ports = free_ports(count)
            if not picks:
                ports[0] = taken
            picks.append(ports)
            return ports

        monkeypatch.setattr(nats_binary, "free_ports", first_pick_collides)
        with LocalCluster(tmp_path / "c", nodes=3) as info:
            assert len(picks) == 2
            assert taken not in [node.client_port for node in info.nodes]
            assert all(s.alive and s.jetstream == "ok" for s in cluster_status(info))


def test_stop_cluster_leaves_no_process_alive(tmp_path: Path) -> None:
    info = start_cluster(tmp_path / "c", nodes=3)
    pids = [node.pid for node in info.nodes]
    assert all(is_nats_server(pid) for pid in pids)

    stop_cluster(info, remove_data=True)

    assert_gone(pids)
    assert not (tmp_path / "c").exists()


def test_local_cluster_stops_even_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), LocalCluster(tmp_path / "c") as info:
        pids = [node.pid for node in info.nodes]
        raise RuntimeError("test body failed")
    assert_gone(pids)
    assert load_cluster(tmp_path / "c") is None


def test_the_three_node_config_is_one_cluster_of_routes() -> None:
    routes = [f"nats-route://nats-{i}.nats:6222" for i in range(3)]
    config = render_node_config(
        server_name="nats-0",
        client_port=4222,
        monitor_port=8222,
        store_dir="/data/jetstream",
        host="0.0.0.0",
        cluster_name="natsbank",
        cluster_port=6222,
        routes=routes,
        sync_interval="1s",
    )
    assert 'sync_interval: "1s"' in config
    assert 'name: "natsbank"' in config
    assert all(f'"{route}"' in config for route in routes)
    assert "cluster" not in render_node_config(
        server_name="n1", client_port=4222, monitor_port=8222, store_dir="/d"
    )
    with pytest.raises(ConfigError):
        render_node_config(
            server_name="n1", client_port=1, monitor_port=2, store_dir="/d", sync_interval="soon"
        )


def test_nats_url_comes_from_the_environment_before_the_dev_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="natsbank dev up"):
        resolve_nats_url(load_settings())
    monkeypatch.setenv("NATS_URL", "nats://10.0.0.1:4222,nats://10.0.0.2:4222")
    url = resolve_nats_url(load_settings())
    assert server_list(url) == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"]


def natsbank(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in its own process, as a user would; NATSBANK_HOME comes from conftest."""
    code = "from eventsource.cli.app import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_dev_up_status_down_through_the_cli(natsbank_home: Path) -> None:
    state_dir = natsbank_home / "dev"
    try:
        up = natsbank("dev", "up", "--nodes", "1")
        assert up.returncode == 0, up.stderr
        info = load_cluster(state_dir)
        assert info is not None
        assert f"NATS_URL={info.url}" in up.stdout
        assert resolve_nats_url(load_settings()) == info.url

        again = natsbank("dev", "up")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout

        status = natsbank("dev", "status", "--json")
        assert status.returncode == 0, status.stderr
        report = msgspec.json.decode(status.stdout)
        assert report["running"] is True
        assert report["url"] == info.url
        assert [(n["name"], n["alive"], n["jetstream"]) for n in report["nodes"]] == [
            ("n1", True, "ok")
        ]

        down = natsbank("dev", "down")
        assert down.returncode == 0, down.stderr
        assert not any(is_nats_server(node.pid) for node in info.nodes)
        assert not state_dir.exists()

        after = natsbank("dev", "status", "--json")
        assert after.returncode == 1
        assert msgspec.json.decode(after.stdout)["running"] is False
    finally:
        leftover = load_cluster(state_dir)
        if leftover is not None:
            stop_cluster(leftover)


def test_dev_up_refuses_a_cluster_size_it_cannot_run() -> None:
    result = natsbank("dev", "up", "--nodes", "2")
    assert result.returncode == 2
    assert "1 or 3 nodes" in result.stderr
