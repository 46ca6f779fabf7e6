"""The secrets of a deployment (compose.yaml, k8s/), generated on the machine that deploys and
never committed: an nkey seed per identity, the operator's signing seed, the nats-server
`accounts` block for their public keys, the public signing keys `streams init` registers, and
the PostgreSQL password. The same seed writer and renderer as `natsbank dev up`.

The manifests name these files: `<out>/<identity>.nk`, `<out>/operator.nk` (it signs funding
and dead-letter retries: an nkey operator seed, no NATS user), `<out>/nats-auth.conf`,
`<out>/signing-keys.json` (each bank's service key, which is also its signing key, and the
operator's: public) and `<out>/postgres.env`. Files that exist are kept, so running it again
(say, with one more participant) keeps every key and password and renders the config and the
public keys for all of them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nkeys

from eventsource.adapters.auth_config import render_accounts
from eventsource.adapters.credentials import ensure_seed, ensure_seeds, identities, seed_path
from eventsource.adapters.signing_key_file import (
    SIGNING_KEYS_FILE,
    SigningKeys,
    write_signing_keys,
)
from eventsource.adapters.signing_keys import OPERATOR
from eventsource.core.permissions import Identity, Role

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
    operator_key: Path  # the operator's signing seed
    signing_keys: Path  # the public signing keys (adapters/signing_key_file.py)


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
    operator = ensure_seed(seed_path(out, OPERATOR), nkeys.PREFIX_BYTE_OPERATOR)
    for name in (*names, OPERATOR):
        seed_path(out, name).chmod(SEED_MODE)
    auth = out / AUTH_CONFIG
    _write_private(auth, render_accounts(keys, participants, partitions), replace=True)
    banks = {p: keys[Identity(Role.SERVICE, p).name] for p in participants}
    write_signing_keys(out / SIGNING_KEYS_FILE, SigningKeys(operator, banks))
    postgres = out / POSTGRES_ENV
    if not postgres.exists():
        password = secrets.token_urlsafe(PASSWORD_BYTES)  # URL-safe: it goes into the DSN
        dsn = f"postgresql://{postgres_user}:{password}@{postgres_host}/{postgres_db}"
        _write_private(postgres, f"POSTGRES_PASSWORD={password}\nNATSBANK_PG_DSN={dsn}\n")
    return DeploymentSecrets(
        out, names, auth, postgres, seed_path(out, OPERATOR), out / SIGNING_KEYS_FILE
    )


def _write_private(path: Path, text: str, *, replace: bool = False) -> None:
    """Mode 0600 from the start (the nats and postgres containers read it as root)."""
    if replace:
        path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
