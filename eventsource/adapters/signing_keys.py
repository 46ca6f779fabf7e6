"""Where a process finds its signing seeds (nkey seed files), and where the dev ones are made.

One small API, so that another key source (a service nkey of per-bank credentials) can be
plugged in without touching the signers:

- a bank's key: the file given by `serve --signing-key FILE` or `NATSBANK_SIGNING_KEY`, else
  `<keys dir>/<participant>.nk`, generated there when the participant is registered;
- the operator's key (it signs funding): `NATSBANK_OPERATOR_KEY`, else `<keys dir>/operator.nk`,
  generated there by the first funding or `streams init`;
- the keys dir: `NATSBANK_KEYS_DIR`, else the dev state's `keys/` (`$NATSBANK_HOME/dev/keys`).

Seeds are written 0600, created exclusively (two processes racing end with one key).
"""

from __future__ import annotations

import os
from pathlib import Path

import nkeys

from eventsource.core.errors import ConfigError
from eventsource.core.signing import SignatureProblem, Signer, new_seed
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
    path = key_file(name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use that one
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(new_seed(prefix) + b"\n")
    return load_signer(path)


def participant_signer(participant: str, key: Path | None = None) -> Signer:
    """What `serve` signs with: `key`, else NATSBANK_SIGNING_KEY, else the dev key made at
    registration (never made here: a bank's key is the one its registration names)."""
    given = key or os.environ.get(SIGNING_KEY_ENV)
    if given:
        return load_signer(Path(given))
    path = key_file(participant)
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
