"""A local NATS cluster of real nats-server processes, for `natsbank dev`, the demo and tests.

The processes are detached, and their ports and pids are recorded in `<state_dir>/cluster.json`,
so a later command (or another process) can find, check and stop them.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from eventsource.adapters import nats_binary
from eventsource.adapters.cluster_auth import ClusterAuth, authorization_block
from eventsource.adapters.cluster_info import ClusterInfo, NodeInfo, NodeStatus
from eventsource.adapters.nats_binary import is_nats_server
from eventsource.adapters.nats_url import server_list
from eventsource.adapters.pki import TLS_DIR, ServerTls, ensure_pki
from eventsource.core.errors import ConfigError, InfrastructureError
from eventsource.settings import Settings

STATE_FILE = "cluster.json"
START_TIMEOUT = 30.0
_PORT_TAKEN = "address already in use"


class _PortTaken(InfrastructureError):
    """A port picked as free was taken before nats-server could bind it."""


def dev_state_dir(settings: Settings) -> Path:
    return settings.home_path / "dev"


def resolve_nats_url(settings: Settings) -> str:
    """NATS_URL if set, else the running dev cluster; every command finds its servers here."""
    if settings.nats_url:
        server_list(settings.nats_url)  # a ConfigError now, rather than a connect that never ends
        return settings.nats_url
    info = load_cluster(dev_state_dir(settings))
    if info is not None and cluster_running(info):
        return info.url
    raise ConfigError("no NATS cluster: run `natsbank dev up` or set NATS_URL")


def start_cluster(
    state_dir: Path,
    nodes: int = 1,
    *,
    sync_interval: str | None = None,
    name: str = "natsbank",
    timeout: float = START_TIMEOUT,
    auth: ClusterAuth | None = None,
    tls: bool = False,
) -> ClusterInfo:
    """Start `nodes` (1 or 3) servers and return once JetStream accepts requests on all of them.

    Store dirs under `state_dir` are reused, so data survives a stop without `remove_data`.
    With `auth`, the servers run with authorization on and the credentials are generated under
    `state_dir` (adapters/credentials.py); without it, anyone may connect and do anything.
    With `tls`, clients and routes speak TLS only, with a CA and certificates generated under
    `<state_dir>/tls` (adapters/pki.py); commands that find this cluster trust its CA.
    """
    if nodes not in (1, 3):
        raise ConfigError(f"a dev cluster has 1 or 3 nodes, not {nodes}")
    nats_binary.check_sync_interval(sync_interval)
    state_dir = Path(state_dir).resolve()
    previous = load_cluster(state_dir)
    if previous is not None and cluster_running(previous):
        raise ConfigError(f"a cluster is already running in {state_dir}")
    nats_binary.find_nats_server()
    state_dir.mkdir(parents=True, exist_ok=True)
    accounts = authorization_block(state_dir, auth) if auth is not None else ""
    server_tls = ensure_pki(state_dir / TLS_DIR) if tls else None
    options = (sync_interval, name, timeout, accounts, server_tls)
    try:
        return _start_once(state_dir, nodes, *options)
    except _PortTaken:
        pass  # someone bound a port between free_ports() and nats-server: pick new ones
    try:
        return _start_once(state_dir, nodes, *options)
    except _PortTaken as exc:
        raise InfrastructureError(str(exc)) from None


def load_cluster(state_dir: Path) -> ClusterInfo | None:
    """The cluster recorded in `state_dir`, or None if none was started there."""
    path = Path(state_dir) / STATE_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClusterInfo)
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"unreadable {path}: {exc}; remove it, stop stray nats-server") from None


def cluster_running(info: ClusterInfo) -> bool:
    return any(is_nats_server(node.pid) for node in info.nodes)


def cluster_status(info: ClusterInfo) -> list[NodeStatus]:
    return [_node_status(node) for node in info.nodes]


def stop_cluster(info: ClusterInfo, *, remove_data: bool = False) -> None:
    """SIGTERM every node, SIGKILL after 5 s; forget the cluster, and its data if asked."""
    survivors = nats_binary.terminate([node.pid for node in info.nodes], grace=5.0)
    if survivors:
        raise InfrastructureError(f"nats-server pids {survivors} survived SIGKILL")
    state_dir = Path(info.state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if remove_data:
        shutil.rmtree(state_dir, ignore_errors=True)


def kill_node(info: ClusterInfo, index: int) -> None:
    """Crash node `index` (0-based) with SIGKILL, for fault tests; returns once it is dead."""
    nats_binary.kill(info.nodes[index].pid)


def restart_node(info: ClusterInfo, index: int, *, timeout: float = START_TIMEOUT) -> ClusterInfo:
    """Start node `index` again on its config, ports and store, and wait until it has caught up.

    A node that is still running is stopped first. The new pid is saved in cluster.json.
    """
    node = info.nodes[index]
    nats_binary.terminate([node.pid])
    info = _replace_node(info, index, _spawn(node, append=True))
    _save(info)
    try:
        _wait_ready(info, [index], timeout)
    except _PortTaken as exc:
        raise InfrastructureError(str(exc)) from None
    return info


@dataclasses.dataclass
class LocalCluster:
    """`with LocalCluster(path, nodes=3) as info:` the servers never outlive the block."""

    state_dir: Path
    nodes: int = 1
    _: dataclasses.KW_ONLY
    sync_interval: str | None = None
    name: str = "natsbank"
    remove_data: bool = False
    keep_running: bool = False  # `demo --keep`: leave it up unless the block failed
    auth: ClusterAuth | None = None  # authorization on, credentials under state_dir
    tls: bool = False  # TLS for clients and routes, certificates under state_dir
    info: ClusterInfo | None = dataclasses.field(default=None, init=False)

    def __enter__(self) -> ClusterInfo:
        self.info = start_cluster(
            self.state_dir,
            self.nodes,
            sync_interval=self.sync_interval,
            name=self.name,
            auth=self.auth,
            tls=self.tls,
        )
        return self.info

    def __exit__(self, *exc_info: object) -> None:
        if self.keep_running and exc_info[0] is None:
            return
        # restart_node may have replaced pids since __enter__; cluster.json has the latest.
        info = load_cluster(self.state_dir) or self.info
        if info is not None:
            stop_cluster(info, remove_data=self.remove_data)


def _write_configs(
    state_dir: Path,
    nodes: int,
    sync_interval: str | None,
    name: str,
    accounts: str,
    tls: ServerTls | None,
) -> ClusterInfo:
    ports = nats_binary.free_ports(3 * nodes)
    client, route, monitor = ports[:nodes], ports[nodes : 2 * nodes], ports[2 * nodes :]
    routes = [f"nats-route://127.0.0.1:{port}" for port in route]
    infos = []
    for i in range(nodes):
        node_dir = state_dir / "nodes" / f"n{i + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        node = NodeInfo(
            name=f"n{i + 1}",
            client_port=client[i],
            cluster_port=route[i] if nodes > 1 else None,
            monitor_port=monitor[i],
            pid=0,
            config_path=str(node_dir / "nats.conf"),
            log_path=str(node_dir / "nats.log"),
            store_dir=str(node_dir / "jetstream"),
            tls=tls is not None,
        )
        config = nats_binary.render_node_config(
            server_name=node.name,
            client_port=node.client_port,
            monitor_port=node.monitor_port,
            store_dir=node.store_dir,
            cluster_name=name if nodes > 1 else None,
            cluster_port=node.cluster_port,
            routes=routes if nodes > 1 else (),
            sync_interval=sync_interval,
            authorization=accounts,
            tls=tls,
        )
        Path(node.config_path).write_text(config)
        infos.append(node)
    return ClusterInfo(
        name=name, state_dir=str(state_dir), nodes=tuple(infos), sync_interval=sync_interval
    )


def _start_once(
    state_dir: Path,
    nodes: int,
    sync_interval: str | None,
    name: str,
    timeout: float,
    accounts: str,
    tls: ServerTls | None,
) -> ClusterInfo:
    info = _write_configs(state_dir, nodes, sync_interval, name, accounts, tls)
    try:
        for index, node in enumerate(info.nodes):
            info = _replace_node(info, index, _spawn(node, append=False))
            _save(info)
        _wait_ready(info, range(nodes), timeout)
    except BaseException:
        stop_cluster(info)
        raise
    return info


def _replace_node(info: ClusterInfo, index: int, node: NodeInfo) -> ClusterInfo:
    nodes = list(info.nodes)
    nodes[index] = node
    return msgspec.structs.replace(info, nodes=tuple(nodes))


def _spawn(node: NodeInfo, *, append: bool) -> NodeInfo:
    log_path = Path(node.log_path)
    if not append:
        log_path.write_bytes(b"")
    pid = nats_binary.spawn(Path(node.config_path), log_path)
    return msgspec.structs.replace(node, pid=pid)


def _save(info: ClusterInfo) -> None:
    path = Path(info.state_dir) / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(info)))
    tmp.replace(path)


def _node_status(node: NodeInfo) -> NodeStatus:
    alive = is_nats_server(node.pid)
    jetstream = "not running"
    if alive:
        status, body = nats_binary.http_get(f"{node.monitor_url}/healthz")
        jetstream = "ok" if status == 200 else nats_binary.error_reason(body)
    return NodeStatus(
        name=node.name,
        pid=node.pid,
        url=node.url,
        monitor_url=node.monitor_url,
        alive=alive,
        jetstream=jetstream,
    )


def _wait_ready(info: ClusterInfo, indexes: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problems: dict[int, str | None] = dict.fromkeys(indexes, "not probed")
    while any(problems.values()):
        for index in [i for i, problem in problems.items() if problem]:
            node = info.nodes[index]
            if not is_nats_server(node.pid):
                tail = nats_binary.log_tail(node.log_path)
                message = f"nats-server {node.name} exited ({node.log_path}):\n{tail}"
                if _PORT_TAKEN in tail:
                    raise _PortTaken(message)
                raise InfrastructureError(message)
            problems[index] = nats_binary.not_ready_because(
                node.monitor_url, node.name, len(info.nodes)
            )
        stuck = [(info.nodes[i], problem) for i, problem in problems.items() if problem]
        if stuck and time.monotonic() > deadline:
            node, problem = stuck[0]
            raise InfrastructureError(
                f"nats-server {node.name} not ready after {timeout:g} s: {problem}"
                f" ({node.log_path}):\n{nats_binary.log_tail(node.log_path)}"
            )
        if stuck:
            time.sleep(0.1)
