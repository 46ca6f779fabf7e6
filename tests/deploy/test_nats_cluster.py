"""The NATS cluster the manifests describe is the one natsbank is tested on: compose.yaml and k8s/
carry the same k8s/config/nats.conf, it has every setting the dev launcher writes, and three real
nats-servers started from it (addresses moved to loopback) form a JetStream cluster on which the
deployment's own steps work: `streams init`, the health probe, the accounts script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import nats
import pytest

from eventsource.adapters import nats_binary
from eventsource.adapters.nats_binary import render_node_config
from eventsource.core.subjects import ledger_stream
from tests.deploy import manifests
from tests.deploy.nats_conf import Block, parse, unquote

NATS_CONF = manifests.CONFIG / "nats.conf"
NODES = [f"nats-{i}" for i in range(3)]
READY_TIMEOUT = 30.0


def manifest_conf() -> Block:
    return parse(NATS_CONF.read_text())


def route_hosts(conf: Block) -> list[str]:
    routes = conf.items["cluster"].items["routes"]  # type: ignore[union-attr]
    return [unquote(route).removeprefix("nats-route://").rsplit(":", 1)[0] for route in routes]


def test_compose_and_k8s_carry_the_same_nats_conf() -> None:
    compose = manifests.load_compose()["services"]
    for name in NODES:
        service = compose[name]
        config_path = service["command"][service["command"].index("--config") + 1]
        assert f"./k8s/config/nats.conf:{config_path}:ro" in service["volumes"]
        assert service["environment"] == {"SERVER_NAME": name}
        assert service["networks"]["default"]["aliases"] == [f"{name}.nats"]
    resources = {(d["kind"], d["metadata"]["name"]): d for d in manifests.render_k8s()}
    config_map = next(d for (kind, n), d in resources.items() if n.startswith("nats-config"))
    assert config_map["data"]["nats.conf"] == NATS_CONF.read_text()
    statefulset = resources[("StatefulSet", "nats")]["spec"]
    assert (statefulset["replicas"], statefulset["serviceName"]) == (3, "nats")
    assert resources[("Service", "nats")]["spec"]["clusterIP"] == "None"
    container = statefulset["template"]["spec"]["containers"][0]
    assert container["args"] == ["--config", "/etc/nats/nats.conf"]
    server_name = next(e for e in container["env"] if e["name"] == "SERVER_NAME")
    assert server_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_the_nats_conf_names_the_nodes_the_manifests_run() -> None:
    conf = manifest_conf()
    assert conf.items["server_name"] == "$SERVER_NAME"
    assert route_hosts(conf) == [f"{name}.nats" for name in NODES]
    client_port = unquote(conf.items["listen"]).rsplit(":", 1)[1]  # type: ignore[arg-type]
    wanted = ",".join(f"nats://{name}.nats:{client_port}" for name in NODES)
    compose_urls = manifests.compose_environment(manifests.load_compose())["NATS_URL"]
    k8s_urls = manifests.k8s_environment(manifests.render_k8s())["NATS_URL"]
    assert set(compose_urls) == set(k8s_urls) == {wanted}


def test_the_nats_conf_has_every_setting_the_dev_launcher_writes() -> None:
    launcher = parse(
        render_node_config(
            server_name="n1",
            client_port=4222,
            monitor_port=8222,
            store_dir="/data",
            cluster_name="natsbank",
            cluster_port=6222,
            routes=["nats-route://127.0.0.1:6222"],
        )
    )
    assert launcher.paths() <= manifest_conf().paths()
    assert manifest_conf().items["cluster"].items["name"] == '"natsbank"'  # type: ignore[union-attr]


def loopback_config(conf: Block, name: str, ports: dict[str, list[int]], store: Path) -> str:
    """The manifest's config for node `name`, with only its addresses and store dir moved."""
    index = NODES.index(name)
    jetstream, cluster = conf.items["jetstream"], conf.items["cluster"]
    assert isinstance(jetstream, Block) and isinstance(cluster, Block)
    conf.items["listen"] = json.dumps(f"127.0.0.1:{ports['client'][index]}")
    conf.items["http"] = json.dumps(f"127.0.0.1:{ports['monitor'][index]}")
    jetstream.items["store_dir"] = json.dumps(str(store))
    cluster.items["listen"] = json.dumps(f"127.0.0.1:{ports['route'][index]}")
    by_host = {f"{node}.nats": port for node, port in zip(NODES, ports["route"], strict=True)}
    cluster.items["routes"] = [
        json.dumps(f"nats-route://127.0.0.1:{by_host[host]}") for host in route_hosts(conf)
    ]
    return conf.render()


@pytest.fixture(scope="module")
def manifest_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three nats-servers from k8s/config/nats.conf; yields their NATS_URL, stops them after."""
    root = tmp_path_factory.mktemp("manifest-cluster")
    free = nats_binary.free_ports(9)
    ports = {"client": free[0:3], "route": free[3:6], "monitor": free[6:9]}
    pids: list[int] = []
    try:
        for name in NODES:
            config = root / f"{name}.conf"
            config.write_text(loopback_config(manifest_conf(), name, ports, root / name))
            # SERVER_NAME reaches nats-server through its environment, as in compose and k8s.
            with mock.patch.dict(os.environ, {"SERVER_NAME": name}):
                pids.append(nats_binary.spawn(config, root / f"{name}.log"))
        wait_ready(root, ports["monitor"], pids)
        yield ",".join(f"nats://127.0.0.1:{port}" for port in ports["client"])
    finally:
        survivors = nats_binary.terminate(pids)
        assert survivors == [], f"nats-server pids {survivors} survived"


def wait_ready(root: Path, monitor_ports: list[int], pids: list[int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    for name, port, pid in zip(NODES, monitor_ports, pids, strict=True):
        while problem := nats_binary.not_ready_because(f"http://127.0.0.1:{port}", name, 3):
            log = nats_binary.log_tail(root / f"{name}.log")
            assert nats_binary.is_nats_server(pid), f"{name} exited:\n{log}"
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not ready after {READY_TIMEOUT:g} s: {problem}\n{log}")
            time.sleep(0.1)


def natsbank(url: str, home: Path, *args: str, script: Path | None = None):
    """The real CLI (or a deployment script calling it) as the containers run it."""
    env = {
        **os.environ,
        "NATS_URL": url,
        "NATSBANK_HOME": str(home),
        "NATSBANK_STREAMS_FILE": str(manifests.CONFIG / "streams.yaml"),
        "PATH": f"{sysconfig.get_path('scripts')}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    argv = ["sh", str(script)] if script else [sys.executable, "-m", "eventsource.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


async def test_the_manifest_cluster_runs_natsbank_r3(manifest_cluster: str, tmp_path: Path) -> None:
    init = natsbank(manifest_cluster, tmp_path, "streams", "init", "--json")
    assert init.returncode == 0, init.stderr
    nc = await nats.connect(servers=manifest_cluster.split(","))
    try:
        info = await nc.jetstream().stream_info(ledger_stream(0))
    finally:
        await nc.close()
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader in NODES
    assert sorted([info.cluster.leader, *(peer.name for peer in info.cluster.replicas)]) == NODES

    for participant in ("bank-a", "bank-b"):
        probe = natsbank(manifest_cluster, tmp_path, "health", "--participant", participant)
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.startswith("healthy:") and len(probe.stdout.splitlines()) == 1


def test_the_accounts_script_opens_once(manifest_cluster: str, tmp_path: Path) -> None:
    script = manifests.CONFIG / "open-accounts.sh"
    init = natsbank(manifest_cluster, tmp_path, "streams", "init")  # idempotent
    assert init.returncode == 0, init.stderr
    first = natsbank(manifest_cluster, tmp_path, script=script)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("opened ") == 4, first.stdout
    again = natsbank(manifest_cluster, tmp_path, script=script)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already open") == 4, again.stdout
    listed = json.loads(natsbank(manifest_cluster, tmp_path, "accounts", "list", "--json").stdout)
    assert sorted((a["participant"], a["account"]) for a in listed) == [
        ("bank-a", "alice"),
        ("bank-a", "anna"),
        ("bank-b", "berta"),
        ("bank-b", "bob"),
    ]
