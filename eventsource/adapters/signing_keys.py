"""Where a process finds its signing seeds (nkey seed files), and where the dev ones are made.

- a bank's key: the file given by `serve --signing-key FILE` or `NATSBANK_SIGNING_KEY` (in a
  deployment, the bank's own service nkey seed: `natsbank deploy keys`), else its dev key;
- a bank's dev key: its service nkey `$NATSBANK_HOME/dev/credentials/service.<P>.nk` when the
  dev cluster runs with authorization (`natsbank dev up`: one key per bank, which connects and
  signs), else `<keys dir>/<P>.nk`, generated there when the participant is registered;
- the operator's key (it signs funding and dead-letter retries): `NATSBANK_OPERATOR_KEY`, else
  `<keys dir>/operator.nk`, generated there by the first funding or `streams init`;
- the keys dir: `NATSBANK_KEYS_DIR`, else the dev state's `keys/` (`$NATSBANK_HOME/dev/keys`).

Seeds are written by the one seed writer (adapters/credentials.py): 0600, created exclusively.
"""

from __future__ import annotations

import os
from pathlib import Path

import nkeys

from eventsource.adapters.credentials import credentials_dir, ensure_seed, seed_path
from eventsource.core.errors import ConfigError
from eventsource.core.permissions import Identity, Role
from eventsource.core.signing import SignatureProblem, Signer
from eventsource.settings import default_home

SIGNING_KEY_ENV = "NATSBANK_SIGNING_KEY"
OPERATOR_KEY_ENV = "NATSBANK_OPERATOR_KEY"
KEYS_DIR_ENV = "NATSBANK_KEYS_DIR"
OPERATOR = "operator"  # the operator key's file stem


def keys_dir() -> Path:
    given = os.environ.get(KEYS_DIR_ENV)
    return Path(given) if given else default_home() / "dev" / "keys"


def key_file(name: str) -> Path:
    return keys_dir() / f"{name}.nk"


def load_signer(path: Path) -> Signer:
    """The signer of a seed file, or a one-line ConfigError."""
    try:
        return Signer(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from None
    except SignatureProblem as exc:
        raise ConfigError(f"the signing key {path} is {exc}") from None


def dev_signer(name: str, *, prefix: int = nkeys.PREFIX_BYTE_USER) -> Signer:
    """The seed `<keys dir>/<name>.nk`, generated if it does not exist yet."""
    ensure_seed(key_file(name), prefix)
    return load_signer(key_file(name))


def service_seed(participant: str) -> Path:
    """The participant's service nkey in the dev state (`natsbank dev up` makes it)."""
    dev_state = default_home() / "dev"
    return seed_path(credentials_dir(dev_state), Identity(Role.SERVICE, participant).name)


def dev_participant_key(participant: str) -> Path:
    """The seed a bank signs with in dev: its service nkey if the dev cluster made one (one key
    per bank), else `<keys dir>/<P>.nk` (made at registration)."""
    service = service_seed(participant)
    return service if service.is_file() else key_file(participant)


def registered_dev_signer(participant: str) -> Signer:
    """What registration records when no key is given: the bank's dev key, made if need be."""
    service = service_seed(participant)
    return load_signer(service) if service.is_file() else dev_signer(participant)


def participant_signer(participant: str, key: Path | None = None) -> Signer:
    """What `serve` signs with: `key`, else NATSBANK_SIGNING_KEY, else the dev key made at
    registration (never made here: a bank's key is the one its registration names)."""
    given = key or os.environ.get(SIGNING_KEY_ENV)
    if given:
        return load_signer(Path(given))
    path = dev_participant_key(participant)
    if not path.exists():
        raise ConfigError(
            f"no signing key for {participant}: pass --signing-key FILE, set {SIGNING_KEY_ENV}, "
            f"or register it here (`natsbank streams init`), which makes {path}"
        )
    return load_signer(path)


def operator_signer() -> Signer:
    """What funding is signed with: NATSBANK_OPERATOR_KEY, else the dev operator key."""
    given = os.environ.get(OPERATOR_KEY_ENV)
    if given:
        return load_signer(Path(given))
    return dev_signer(OPERATOR, prefix=nkeys.PREFIX_BYTE_OPERATOR)
