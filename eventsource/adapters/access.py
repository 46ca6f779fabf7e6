"""Where a command connects and as whom: the one place that resolves both.

The servers: NATS_URL, else the running dev cluster. The credential: the one given
(adapters/credentials.py), else, when the command talks to the dev cluster, that cluster's
seed for the identity the command needs."""

from __future__ import annotations

from pathlib import Path

from eventsource.adapters.cluster import (
    cluster_running,
    dev_state_dir,
    load_cluster,
    resolve_nats_url,
)
from eventsource.adapters.credentials import Credential, resolve_credential
from eventsource.core.permissions import Identity
from eventsource.settings import Settings


def resolve_access(settings: Settings, identity: Identity) -> tuple[str, Credential]:
    url = resolve_nats_url(settings)
    return url, resolve_credential(settings, identity, _dev_state_for(settings, url))


def _dev_state_for(settings: Settings, url: str) -> Path | None:
    """The dev cluster's state directory when `url` is that cluster, else None."""
    state_dir = dev_state_dir(settings)
    info = load_cluster(state_dir)
    if info is None or not cluster_running(info):
        return None
    return state_dir if url == info.url else None
