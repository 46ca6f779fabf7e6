"""What a local cluster is: its nodes, their ports and processes (saved as `cluster.json`)."""

from __future__ import annotations

import msgspec


class NodeInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    client_port: int
    # None for a standalone node, which has no cluster block.
    cluster_port: int | None
    monitor_port: int
    pid: int
    config_path: str
    log_path: str
    store_dir: str
    tls: bool = False  # the client port speaks TLS only (`dev up --tls`)

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


class ClusterInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state_dir: str
    nodes: tuple[NodeInfo, ...]
    sync_interval: str | None = None

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The NATS_URL form. nats-py does not split it: pass `.urls` or `server_list(url)`."""
        return ",".join(self.urls)

    @property
    def monitor_urls(self) -> list[str]:
        return [node.monitor_url for node in self.nodes]


class NodeStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    pid: int
    url: str
    monitor_url: str
    alive: bool
    # "ok", or why /healthz says JetStream is not usable on this node.
    jetstream: str
