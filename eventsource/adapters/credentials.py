"""Credentials: generated nkeys in the dev state, and the one place that decides which
credential a command connects with.

Every identity of core/permissions.py is an Ed25519 key pair (an nkey). `natsbank dev up`
writes one seed file per identity, mode 0600, under `<home>/dev/credentials/`; the server
config holds only the public keys. A command takes, in this order: `--creds`/`NATSBANK_CREDS`
(a JWT creds file), `--nkey`/`NATSBANK_NKEY` (a seed file), `--user` + `--password`
(`NATSBANK_USER`, `NATSBANK_PASSWORD`), else the dev seed of the role it needs, else none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

from eventsource.core.errors import ConfigError
from eventsource.core.permissions import JS_API, OPERATOR_ROLES, Identity, Role
from eventsource.core.signing import new_seed
from eventsource.settings import Settings

CREDENTIALS_DIR = "credentials"
SEED_SUFFIX = ".nk"
SYSTEM_USER = "sys"


@dataclass(frozen=True)
class Credential:
    """How one connection authenticates, and the API prefix and reply inbox it must use."""

    identity: Identity | None = None
    options: dict = field(default_factory=dict)  # nats.connect keyword arguments
    js_api: str = JS_API

    @property
    def anonymous(self) -> bool:
        return not any(o in self.options for o in ("user_credentials", "nkeys_seed", "user"))

    def with_options(self, extra: dict) -> Credential:
        """The same credential over a connection with `extra` options (TLS)."""
        return Credential(self.identity, {**self.options, **extra}, self.js_api)

    @property
    def reads_by_direct_get(self) -> bool:
        """Under authorization no tool but admin's provisioning creates consumers: whole-stream
        reads use batched direct gets (adapters/direct_reader.py). Without, as always."""
        return not self.anonymous

    def describe(self) -> str:
        """Which credential, never its secret."""
        for option in ("user_credentials", "nkeys_seed"):
            if option in self.options:
                return f"{option.replace('_', ' ')} {self.options[option]}"
        if "user" in self.options:
            return f"user {self.options['user']}"
        return "no credential"


NO_CREDENTIAL = Credential()


def credentials_dir(state_dir: Path) -> Path:
    return Path(state_dir) / CREDENTIALS_DIR


def identities(participants: list[str]) -> list[Identity]:
    banks = [Identity(r, p) for p in sorted(set(participants)) for r in (Role.SERVICE, Role.CLIENT)]
    return [*(Identity(r) for r in OPERATOR_ROLES), *banks]


def seed_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}{SEED_SUFFIX}"


def ensure_seeds(directory: Path, participants: list[str]) -> dict[str, str]:
    """A seed per identity (and the SYS user), kept if it exists; name -> public key."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    names = [i.name for i in identities(participants)] + [SYSTEM_USER]
    return {name: ensure_seed(seed_path(directory, name)) for name in names}


def ensure_seed(path: Path, prefix: int = nkeys.PREFIX_BYTE_USER) -> str:
    """The nkey seed file `path` (a new one of kind `prefix` if there is none, mode 0600,
    created exclusively: two processes racing end with one key); its public key."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use that one
        else:
            with os.fdopen(descriptor, "wb") as out:
                out.write(new_seed(prefix))
    return public_key(path)


def public_key(path: Path) -> str:
    try:
        return nkeys.from_seed(bytearray(Path(path).read_bytes().strip())).public_key.decode()
    except (OSError, nkeys.NkeysError, ValueError) as exc:
        raise ConfigError(f"unreadable nkey seed {path}: {exc}") from None


def resolve_credential(
    settings: Settings, identity: Identity, dev_state: Path | None
) -> Credential:
    """The credential `identity`'s command connects with; `dev_state` is the dev cluster's
    state directory when the command connects to it, else None."""
    inbox = {"inbox_prefix": identity.inbox_prefix}
    api = identity.js_api
    if settings.creds:
        return Credential(identity, {"user_credentials": _file(settings.creds), **inbox}, api)
    if settings.nkey:
        return Credential(identity, {"nkeys_seed": _file(settings.nkey), **inbox}, api)
    if settings.user or settings.password:
        if not (settings.user and settings.password):
            raise ConfigError("give both NATSBANK_USER (--user) and NATSBANK_PASSWORD (--password)")
        userpass = {"user": settings.user, "password": settings.password}
        return Credential(identity, {**userpass, **inbox}, api)
    if dev_state is not None and credentials_dir(dev_state).is_dir():
        path = seed_path(credentials_dir(dev_state), identity.name)
        if not path.is_file():
            raise ConfigError(
                f"the dev cluster has no credential {identity.name!r:.60} ({path}): "
                "`natsbank dev up --participant NAME` registers a participant"
            )
        return Credential(identity, {"nkeys_seed": str(path), **inbox}, api)
    return NO_CREDENTIAL


def _file(path: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"no such credentials file: {path}")
    return path
