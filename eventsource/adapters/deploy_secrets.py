"""The secrets of a deployment (compose.yaml, k8s/), generated on the machine that deploys and
never committed: an nkey seed per identity, the nats-server `accounts` block for their public
keys, and the PostgreSQL password. The same seed writer and renderer as `natsbank dev up`.

The manifests name these files: `<out>/<identity>.nk`, `<out>/nats-auth.conf` and
`<out>/postgres.env`. Files that exist are kept, so running it again (say, with one more
participant) keeps every key and password and renders the config for all of them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eventsource.adapters.auth_config import render_accounts
from eventsource.adapters.credentials import ensure_seeds, identities, seed_path

AUTH_CONFIG = "nats-auth.conf"
POSTGRES_ENV = "postgres.env"
PASSWORD_BYTES = 24
# Compose mounts a secret file with its host owner and mode, and natsbank's containers run as
# uid 10001: the seeds must be readable by others. The directory (0700) keeps them private on
# the host; Kubernetes copies them into Secrets and ignores these modes.
SEED_MODE = 0o644


@dataclass(frozen=True)
class DeploymentSecrets:
    directory: Path
    identities: tuple[str, ...]  # the identity names, one seed file each
    auth_config: Path
    postgres_env: Path


def write_deployment_secrets(
    out: Path,
    participants: Sequence[str],
    partitions: int,
    *,
    postgres_host: str = "postgres:5432",
    postgres_user: str = "natsbank",
    postgres_db: str = "natsbank",
) -> DeploymentSecrets:
    out = Path(out)
    keys = ensure_seeds(out, list(participants))  # creates `out` 0700, seeds 0600
    names = tuple(i.name for i in identities(list(participants)))
    for name in names:
        seed_path(out, name).chmod(SEED_MODE)
    auth = out / AUTH_CONFIG
    _write_private(auth, render_accounts(keys, participants, partitions), replace=True)
    postgres = out / POSTGRES_ENV
    if not postgres.exists():
        password = secrets.token_urlsafe(PASSWORD_BYTES)  # URL-safe: it goes into the DSN
        dsn = f"postgresql://{postgres_user}:{password}@{postgres_host}/{postgres_db}"
        _write_private(postgres, f"POSTGRES_PASSWORD={password}\nNATSBANK_PG_DSN={dsn}\n")
    return DeploymentSecrets(out, names, auth, postgres)


def _write_private(path: Path, text: str, *, replace: bool = False) -> None:
    """Mode 0600 from the start (the nats and postgres containers read it as root)."""
    if replace:
        path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
