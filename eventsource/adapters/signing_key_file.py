"""The public signing keys of a deployment, in one file that `natsbank deploy keys` writes
beside the seeds (`signing-keys.json`) and `streams init` registers (`--signing-keys FILE`,
NATSBANK_SIGNING_KEYS):

    {"operator": "O…", "participants": {"bank-a": "U…", "bank-b": "U…"}}

A bank's key is the public key of its service nkey (the seed its `serve` connects and signs
with); the operator's is that of `operator.nk` (it signs funding and dead-letter retries).
Public keys only: the file is no secret, and it decides whom the registry trusts, so it is read
strictly: a malformed key or a participant it lacks is a one-line ConfigError."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nkeys

from eventsource.core.errors import ConfigError
from eventsource.core.signing import public_key_problem
from eventsource.core.subjects import participant_problem

SIGNING_KEYS_FILE = "signing-keys.json"
SIGNING_KEYS_FILE_MAX = 1 << 20  # bytes: thousands of banks; never read a runaway file whole


class _Layout(msgspec.Struct, forbid_unknown_fields=True):
    operator: str
    participants: dict[str, str]


@dataclass(frozen=True)
class SigningKeys:
    """Each participant's public signing key, and the operator's."""

    operator: str
    participants: Mapping[str, str]
    source: str = ""  # where they were read, for the errors

    def of(self, participant: str) -> str:
        """`participant`'s key, or a one-line ConfigError when the file has none."""
        key = self.participants.get(participant)
        if key is None:
            raise ConfigError(
                f"the signing keys file {self.source or '(given)'} has no key for {participant}: "
                f"run `natsbank deploy keys --participant {participant}` and pass the new "
                f"{SIGNING_KEYS_FILE}"
            )
        return key

    def require(self, participants: list[str]) -> None:
        """A ConfigError naming the first participant the file lacks."""
        for participant in participants:
            self.of(participant)


def given_signing_key(path: str, participant: str) -> str | None:
    """`participant`'s key in the keys file `path` (NATSBANK_SIGNING_KEYS); None when no file
    is given: registration then uses the participant's dev key."""
    return read_signing_keys(Path(path)).of(participant) if path else None


def write_signing_keys(path: Path, keys: SigningKeys) -> None:
    """Replace `path` with `keys` (mode 0644: public keys, read by containers as any user)."""
    layout = _Layout(keys.operator, dict(sorted(keys.participants.items())))
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(msgspec.json.format(msgspec.json.encode(layout)) + b"\n")
    temporary.chmod(0o644)
    os.replace(temporary, path)


def read_signing_keys(path: Path) -> SigningKeys:
    """The keys in `path`, every one checked, or a one-line ConfigError."""
    where = f"the signing keys file {path}"
    try:
        with Path(path).open("rb") as file:
            raw = file.read(SIGNING_KEYS_FILE_MAX + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror}") from None
    if len(raw) > SIGNING_KEYS_FILE_MAX:
        raise ConfigError(f"{where} is over {SIGNING_KEYS_FILE_MAX} bytes")
    try:
        layout = msgspec.json.decode(raw, type=_Layout)
    except msgspec.DecodeError as exc:
        raise ConfigError(
            f'{where} is not {{"operator": KEY, "participants": {{NAME: KEY}}}}: {exc}'
        ) from None
    if problem := public_key_problem(layout.operator, nkeys.PREFIX_BYTE_OPERATOR):
        raise ConfigError(f"{where}: the operator key: {problem}")
    for participant, key in layout.participants.items():
        if problem := participant_problem(participant):
            raise ConfigError(f"{where}: {problem}")
        if problem := public_key_problem(key, nkeys.PREFIX_BYTE_USER):
            raise ConfigError(f"{where}: the key of {participant}: {problem}")
    return SigningKeys(layout.operator, dict(layout.participants), str(path))
