"""Where a command connects and as whom: the one place that resolves both.

The servers: NATS_URL, else the running dev cluster. The identity: the one the command needs,
unless NATSBANK_IDENTITY (`--identity`) names another (a deployed process holds one credential).
The credential: the one given (adapters/credentials.py), else, when the command talks to the
dev cluster, that cluster's seed for the identity. TLS: the CA given, else the dev cluster's."""

from __future__ import annotations

from pathlib import Path

from eventsource.adapters.cluster import (
    cluster_running,
    dev_state_dir,
    load_cluster,
    resolve_nats_url,
)
from eventsource.adapters.credentials import Credential, resolve_credential
from eventsource.adapters.tls import tls_options
from eventsource.core.errors import ConfigError
from eventsource.core.permissions import Identity
from eventsource.settings import Settings


def resolve_access(settings: Settings, identity: Identity) -> tuple[str, Credential]:
    url = resolve_nats_url(settings)
    dev_state = _dev_state_for(settings, url)
    credential = resolve_credential(settings, acting_identity(settings, identity), dev_state)
    return url, credential.with_options(tls_options(settings, url, dev_state))


def acting_identity(settings: Settings, needed: Identity) -> Identity:
    """The identity the command connects as: NATSBANK_IDENTITY if set, else `needed`."""
    if not settings.identity:
        return needed
    try:
        return Identity.parse(settings.identity)
    except ValueError as exc:
        raise ConfigError(f"NATSBANK_IDENTITY (--identity): {exc}") from None


def _dev_state_for(settings: Settings, url: str) -> Path | None:
    """The dev cluster's state directory when `url` is that cluster, else None."""
    state_dir = dev_state_dir(settings)
    info = load_cluster(state_dir)
    if info is None or not cluster_running(info):
        return None
    return state_dir if url == info.url else None
