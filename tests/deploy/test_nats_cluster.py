"""The NATS cluster the manifests describe is the one natsbank is tested on: compose.yaml and k8s/
carry the same k8s/config/nats.conf with the same rendered authorization beside it, it has every
setting the dev launcher writes, and three real nats-servers started from it (addresses moved to
loopback, the secrets of `natsbank deploy keys`) form a JetStream cluster that refuses anonymous
clients and on which the deployment's own steps work, each with its own credential and the
signing keys its manifest gives it: `streams init` (which registers the deployment's public
signing keys), the health probes, the accounts script (funding signed with the operator's seed),
and funding signed by any other operator key refused. (A transfer between the banks, each
signing with its service seed, is tests/e2e/test_cli_signing_keys.py: the deployment's bounded
history needs reads that the banks' grants do not give yet.)"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import nkeys
import pytest

from eventsource.adapters import nats_binary
from eventsource.adapters.credentials import Credential, ensure_seed
from eventsource.adapters.deploy_secrets import AUTH_CONFIG
from eventsource.adapters.jetstream import connect
from eventsource.adapters.key_registry import operator_keys, registered_signing_keys
from eventsource.adapters.nats_binary import render_node_config
from eventsource.adapters.signing_key_file import SIGNING_KEYS_FILE, read_signing_keys
from eventsource.core.permissions import Identity, Role
from eventsource.core.subjects import ledger_stream
from tests.deploy import manifests
from tests.deploy.nats_conf import Block, parse, unquote
from tests.e2e.polling import until_exit_0

NATS_CONF = manifests.CONFIG / "nats.conf"
NODES = [f"nats-{i}" for i in range(3)]
READY_TIMEOUT = 30.0
HEALTHY_WITHIN_S = 60.0  # the R3 assets streams init created elect their leaders first
PROBE_TIMEOUT = ("--timeout", "20")


def manifest_conf() -> Block:
    return parse(NATS_CONF.read_text())


def route_hosts(conf: Block) -> list[str]:
    routes = conf.items["cluster"].items["routes"]  # type: ignore[union-attr]
    return [unquote(route).removeprefix("nats-route://").rsplit(":", 1)[0] for route in routes]


def included(conf: Block) -> str:
    return unquote(conf.items["include"])  # type: ignore[arg-type]


def test_compose_and_k8s_carry_the_same_nats_conf_and_authorization(
    deployment: Path, k8s: list[dict]
) -> None:
    compose = manifests.load_compose()
    auth_file = included(manifest_conf())
    assert compose["secrets"]["nats-auth"] == {"file": f"./{manifests.SECRETS}/{AUTH_CONFIG}"}
    for name in NODES:
        service = compose["services"][name]
        config_path = service["command"][service["command"].index("--config") + 1]
        assert f"./k8s/config/nats.conf:{config_path}:ro" in service["volumes"]
        # the included file, beside the config: the path is relative to it
        beside = str(Path(config_path).parent / auth_file)
        assert {"source": "nats-auth", "target": beside} in service["secrets"]
        assert service["environment"] == {"SERVER_NAME": name}
        assert service["networks"]["default"]["aliases"] == [f"{name}.nats"]
    resources = {(d["kind"], d["metadata"]["name"]): d for d in k8s}
    config_map = next(d for (kind, n), d in resources.items() if n.startswith("nats-config"))
    assert config_map["data"]["nats.conf"] == NATS_CONF.read_text()
    secret = next(d for (kind, n), d in resources.items() if n.startswith("nats-auth"))
    rendered = (deployment / manifests.SECRETS / AUTH_CONFIG).read_text()
    assert base64.b64decode(secret["data"][auth_file]).decode() == rendered
    statefulset = resources[("StatefulSet", "nats")]["spec"]
    assert (statefulset["replicas"], statefulset["serviceName"]) == (3, "nats")
    assert resources[("Service", "nats")]["spec"]["clusterIP"] == "None"
    container = statefulset["template"]["spec"]["containers"][0]
    assert container["args"] == ["--config", "/etc/nats/nats.conf"]
    server_name = next(e for e in container["env"] if e["name"] == "SERVER_NAME")
    assert server_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    config_dir = container["args"][1].rsplit("/", 1)[0]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config_dir)
    volume = next(
        v for v in statefulset["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    sources = {
        next(iter(src)): src[next(iter(src))]["name"] for src in volume["projected"]["sources"]
    }
    assert sources == {
        "configMap": config_map["metadata"]["name"],
        "secret": secret["metadata"]["name"],
    }


def test_the_nats_conf_names_the_nodes_the_manifests_run(deployment: Path, k8s: list[dict]) -> None:
    conf = manifest_conf()
    assert conf.items["server_name"] == "$SERVER_NAME"
    assert route_hosts(conf) == [f"{name}.nats" for name in NODES]
    client_port = unquote(conf.items["listen"]).rsplit(":", 1)[1]  # type: ignore[arg-type]
    wanted = ",".join(f"nats://{name}.nats:{client_port}" for name in NODES)
    compose_urls = manifests.compose_environment(manifests.load_compose(), deployment)["NATS_URL"]
    k8s_urls = manifests.k8s_environment(k8s)["NATS_URL"]
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


def test_the_nats_conf_includes_the_authorization_the_launcher_renders(deployment: Path) -> None:
    """The launcher appends the `accounts` block of adapters/auth_config.py; the manifests
    include the same renderer's output, and nothing in it is a password."""
    rendered = (deployment / manifests.SECRETS / included(manifest_conf())).read_text()
    assert rendered.startswith("accounts: {") and 'system_account: "SYS"' in rendered
    assert "password" not in rendered.lower() and '"nkey": "U' in rendered


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
def manifest_cluster(tmp_path_factory: pytest.TempPathFactory, deployment: Path) -> Iterator[str]:
    """Three nats-servers from k8s/config/nats.conf and the deployment's rendered
    authorization; yields their NATS_URL, stops them after."""
    root = tmp_path_factory.mktemp("manifest-cluster")
    auth_file = included(manifest_conf())
    shutil.copy(deployment / manifests.SECRETS / auth_file, root / auth_file)
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


def natsbank(
    url: str,
    home: Path,
    *args: str,
    identity: str | None = None,
    secrets: Path | None = None,
    script: Path | None = None,
    extra: dict[str, str] | None = None,
):
    """The real CLI (or a deployment script calling it) as the containers run it: with
    `identity`, holding that identity's seed from `secrets` (NATSBANK_IDENTITY, NATSBANK_NKEY);
    a script finds the seeds it names in NKEY_DIR."""
    credential = {}
    if identity is not None and secrets is not None:
        credential = {
            "NATSBANK_IDENTITY": identity,
            "NATSBANK_NKEY": str(secrets / f"{identity}.nk"),
        }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NATSBANK_")},
        **credential,
        "NKEY_DIR": str(secrets or ""),
        **(extra or {}),
        "NATS_URL": url,
        "NATSBANK_HOME": str(home),
        "NATSBANK_STREAMS_FILE": str(manifests.CONFIG / "streams.yaml"),
        "PATH": f"{sysconfig.get_path('scripts')}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    argv = ["sh", str(script)] if script else [sys.executable, "-m", "eventsource.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def init_keys(secrets: Path) -> dict[str, str]:
    """streams-init's signing keys, as its manifest gives them."""
    return {"NATSBANK_SIGNING_KEYS": str(secrets / SIGNING_KEYS_FILE)}


def funding_keys(secrets: Path) -> dict[str, str]:
    """The accounts job's operator key, as its manifest gives it."""
    return {"NATSBANK_OPERATOR_KEY": str(secrets / "operator.nk")}


async def test_the_manifest_cluster_refuses_anonymous_clients(manifest_cluster: str) -> None:
    """The NATS protocol by hand: the server asks for authentication and refuses a CONNECT
    without credentials."""
    host, port = manifest_cluster.split(",")[0].removeprefix("nats://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        info = await asyncio.wait_for(reader.readline(), 10)
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert b'"auth_required":true' in info
    assert answer.startswith(b"-ERR") and b"Authorization Violation" in answer, answer


async def test_the_manifest_cluster_runs_natsbank_r3(
    manifest_cluster: str, deployment: Path, tmp_path: Path
) -> None:
    secrets = deployment / manifests.SECRETS
    refused = natsbank(
        manifest_cluster, tmp_path, "streams", "init", identity="audit", secrets=secrets
    )
    assert refused.returncode != 0  # streams init is the admin's alone
    init = natsbank(
        *(manifest_cluster, tmp_path, "streams", "init", "--json"),
        identity="admin",
        secrets=secrets,
        extra=init_keys(secrets),
    )
    assert init.returncode == 0, init.stderr
    admin = Identity(Role.ADMIN)  # as natsbank connects: it reads without consumers
    options = {"nkeys_seed": str(secrets / "admin.nk"), "inbox_prefix": admin.inbox_prefix}
    nc = await connect(manifest_cluster, credential=Credential(admin, options, admin.js_api))
    try:
        info = await nc.jetstream().stream_info(ledger_stream(0))
        registered, operators = await registered_signing_keys(nc), await operator_keys(nc)
    finally:
        await nc.close()
    keys = read_signing_keys(secrets / SIGNING_KEYS_FILE)  # exactly those, none generated
    assert registered == dict(keys.participants) and operators == [keys.operator]
    assert not (tmp_path / "dev").exists()
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader in NODES
    assert sorted([info.cluster.leader, *(peer.name for peer in info.cluster.replicas)]) == NODES

    # The probe as the pods run it, again until the R3 assets just created have their leaders.
    probe_as = functools.partial(natsbank, manifest_cluster, tmp_path, secrets=secrets)
    for participant in ("bank-a", "bank-b"):
        probe = until_exit_0(
            lambda p=participant: probe_as(
                "health", "--participant", p, *PROBE_TIMEOUT, identity=f"service.{p}"
            ),
            within=HEALTHY_WITHIN_S,
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.startswith("healthy:") and len(probe.stdout.splitlines()) == 1
    for identity in ("projector", "archiver"):
        probe = until_exit_0(
            lambda i=identity: probe_as("health", *PROBE_TIMEOUT, identity=i),
            within=HEALTHY_WITHIN_S,
        )
        assert probe.returncode == 0, probe.stderr


def test_the_accounts_script_opens_once(
    manifest_cluster: str, deployment: Path, tmp_path: Path
) -> None:
    script, secrets = manifests.CONFIG / "open-accounts.sh", deployment / manifests.SECRETS
    init = natsbank(
        *(manifest_cluster, tmp_path, "streams", "init"),
        identity="admin",
        secrets=secrets,
        extra=init_keys(secrets),
    )
    assert init.returncode == 0, init.stderr  # idempotent
    keys = funding_keys(secrets)
    first = natsbank(manifest_cluster, tmp_path, script=script, secrets=secrets, extra=keys)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("opened ") == 4, first.stdout
    again = natsbank(manifest_cluster, tmp_path, script=script, secrets=secrets, extra=keys)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already open") == 4, again.stdout
    listed = natsbank(
        manifest_cluster, tmp_path, "accounts", "list", "--json", identity="audit", secrets=secrets
    )
    listed = json.loads(listed.stdout)
    assert sorted((a["participant"], a["account"]) for a in listed) == [
        ("bank-a", "alice"),
        ("bank-a", "anna"),
        ("bank-b", "berta"),
        ("bank-b", "bob"),
    ]


def test_the_load_script_submits_with_each_bank_s_client_credential(
    manifest_cluster: str, deployment: Path, tmp_path: Path
) -> None:
    """After the accounts script (the test above): each bank's client submits for its bank."""
    script, secrets = manifests.CONFIG / "load.sh", deployment / manifests.SECRETS
    small = {"LOAD_BATCHES": "1", "LOAD_BATCH_SIZE": "2"}
    done = natsbank(manifest_cluster, tmp_path, script=script, secrets=secrets, extra=small)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "submitted 4 transfers", done.stdout


def test_funding_signed_by_another_operator_key_is_refused_in_one_line(
    manifest_cluster: str, deployment: Path, tmp_path: Path
) -> None:
    """After the accounts script: the registered operator key funds, any other is refused
    before anything is written."""
    secrets = deployment / manifests.SECRETS
    stranger = tmp_path / "stranger.nk"
    ensure_seed(stranger, nkeys.PREFIX_BYTE_OPERATOR)
    fund = ("accounts", "fund", "bank-a", "alice", "1.00", "--json")
    for key in (stranger, None):  # another operator key; none (a dev key made on the spot)
        extra = {"NATSBANK_OPERATOR_KEY": str(stranger)} if key else {}
        refused = natsbank(
            manifest_cluster, tmp_path, *fund, identity="funding", secrets=secrets, extra=extra
        )
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
        assert "is not registered" in refused.stderr, refused.stderr
    funded = natsbank(
        *(manifest_cluster, tmp_path, *fund),
        identity="funding",
        secrets=secrets,
        extra=funding_keys(secrets),
    )
    assert funded.returncode == 0, funded.stderr
    assert json.loads(funded.stdout)["balance"] == "1000001.00"
