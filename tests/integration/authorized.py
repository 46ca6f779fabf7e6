"""A cluster with authorization on (the account-per-bank model), provisioned by its admin
credential, and connections as any of its identities."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.cluster_auth import ClusterAuth
from eventsource.adapters.credentials import Credential, credentials_dir, seed_path
from eventsource.adapters.jetstream import connect
from eventsource.adapters.topology import HistoryConfig, Topology
from eventsource.core.permissions import Identity, Role
from eventsource.services.independent.ledger import IndependentLedger

BANKS = ("bank-a", "bank-b", "bank-c")
AUTH = ClusterAuth(BANKS, partitions=1)


def credential(cluster: ClusterInfo, identity: Identity) -> Credential:
    path = seed_path(credentials_dir(Path(cluster.state_dir)), identity.name)
    options = {"nkeys_seed": str(path), "inbox_prefix": identity.inbox_prefix}
    return Credential(identity, options, identity.js_api)


@contextlib.asynccontextmanager
async def connected(
    cluster: ClusterInfo, role: Role, participant: str | None = None, **options
) -> AsyncIterator[Client]:
    identity = Identity(role, participant)
    nc = await connect(cluster.url, credential=credential(cluster, identity), **options)
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


@dataclass(frozen=True)
class Provisioned:
    cluster: ClusterInfo
    topology: Topology


async def provision(cluster: ClusterInfo, history: HistoryConfig | None = None) -> Provisioned:
    """`streams init` as the admin, registering BANKS (with a live horizon: `history`);
    accounts opened as the funding role."""
    topology = Topology(partitions=AUTH.partitions, participants=list(BANKS))
    if history is not None:
        topology = Topology(partitions=AUTH.partitions, participants=list(BANKS), history=history)
    async with connected(cluster, Role.ADMIN) as nc:
        await IndependentLedger(nc, 0).provision(topology)
    async with connected(cluster, Role.FUNDING) as nc:
        ledger = IndependentLedger(nc, AUTH.partitions)
        await ledger.open_account("bank-a", "a1", "EUR", "100.00")
        await ledger.open_account("bank-b", "b1", "EUR")
        await ledger.open_account("bank-c", "c1", "EUR", "5.00")
    return Provisioned(cluster, topology)
