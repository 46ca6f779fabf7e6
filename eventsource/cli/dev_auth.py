"""`natsbank dev up` with authorization: which participants get credentials, and the streams
and registrations made with the admin credential before anyone else connects."""

from __future__ import annotations

import msgspec

from eventsource.adapters.cluster_auth import ClusterAuth
from eventsource.adapters.topology import Topology, load_topology
from eventsource.cli.common import on_ledger
from eventsource.core.permissions import Identity, Role
from eventsource.settings import Settings

DEV_PARTICIPANTS = ("bank-a", "bank-b")


def _topology(settings: Settings, participants: list[str]) -> Topology:
    topology = load_topology(settings.streams_file or None)
    every = sorted({*topology.participants, *participants})
    return msgspec.structs.replace(topology, participants=every)


def dev_auth(settings: Settings, participants: list[str]) -> ClusterAuth:
    """The participants named, and those streams.yaml lists; its partition count."""
    topology = _topology(settings, participants)
    return ClusterAuth(tuple(topology.participants), topology.partitions)


def provision_dev(settings: Settings, auth: ClusterAuth) -> None:
    """`streams init` as the admin, which also registers the participants."""
    topology = _topology(settings, list(auth.participants))
    on_ledger(
        settings,
        Identity(Role.ADMIN),
        lambda ledger: ledger.provision(topology),
        provisioned=False,
    )
