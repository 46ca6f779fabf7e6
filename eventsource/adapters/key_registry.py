"""The public keys natsbank verifies signatures with, kept in the participants registry: each
bank's in its Registration, the operator's (funding) under `_operator`. Whoever may write the
registry decides who is trusted: only the operator's credential may (issue 13)."""

from __future__ import annotations

import contextlib
import time

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.registry import (
    REGISTRY_STREAM,
    Registration,
    registered_participants,
    registry_subject,
)
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.signing_keys import OPERATOR_KEY_ENV, operator_signer
from eventsource.core.errors import ConfigError
from eventsource.core.limits import SENDER_KEYS_MAX, SIGNING_KEY_REFRESH_S
from eventsource.core.signing import Signer
from eventsource.core.subjects import PARTICIPANTS_BUCKET

OPERATOR_KEY = "_operator"


class OperatorKeys(msgspec.Struct, frozen=True):
    """Every operator public key that ever signed funding (a new one is added, none removed:
    old FUNDED entries stay verifiable)."""

    keys: list[str] = []


async def signing_key_of(nc: Client, participant: str) -> str:
    """`participant`'s registered public key, read from the registry stream's leader (a lagging
    replica must not make a valid message look unsigned); "" when it has none."""
    last = await read_last(nc, REGISTRY_STREAM, registry_subject(participant), leader=True)
    if last is None:
        return ""
    try:
        return msgspec.json.decode(last[0], type=Registration).signing_key
    except msgspec.DecodeError:  # a delete marker (empty) or junk: no key
        return ""


async def registered_signing_keys(nc: Client) -> dict[str, str]:
    return {r.participant: r.signing_key for r in await registered_participants(nc)}


async def operator_keys(nc: Client) -> list[str]:
    last = await read_last(nc, REGISTRY_STREAM, registry_subject(OPERATOR_KEY), leader=True)
    if last is None:
        return []
    try:
        return msgspec.json.decode(last[0], type=OperatorKeys).keys
    except msgspec.DecodeError:
        return []


async def add_operator_key(nc: Client, public_key: str) -> None:
    """Record the operator key that signs funding (once; a repeat changes nothing)."""
    known = await operator_keys(nc)
    if public_key in known:
        return

    async def put() -> None:
        kv = await nc.jetstream().key_value(PARTICIPANTS_BUCKET)
        await kv.put(OPERATOR_KEY, msgspec.json.encode(OperatorKeys([*known, public_key])))

    with contextlib.suppress(NotFoundError):  # not set up yet: `streams init` records it
        await transient_retry(put, what="record of the operator's signing key")


async def registered_operator(nc: Client) -> Signer:
    """The operator's signer (funding, republished dead letters), once the registry names its
    key (`streams init` records it): what the audit could not verify is never written."""
    signer = operator_signer()
    if signer.public_key not in await operator_keys(nc):
        raise ConfigError(
            f"the operator key {signer.public_key[:12]}… is not registered: run `natsbank "
            f"streams init` with it (it reads {OPERATOR_KEY_ENV}, else the dev key)"
        )
    return signer


class SenderKeys:
    """A receiver's cache of its senders' registered keys. A miss, or a signature that fails
    with the cached key, reads the registry again (at most every SIGNING_KEY_REFRESH_S per
    sender): a bank that registered a new key is believed within that time."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.keys: dict[str, str] = {}
        self._read_at: dict[str, float] = {}
        self._operators: list[str] = []
        self._operators_at = -SIGNING_KEY_REFRESH_S

    async def operators(self) -> list[str]:
        """The operator keys (they sign republished dead letters), read again at most every
        SIGNING_KEY_REFRESH_S."""
        now = time.monotonic()
        if now - self._operators_at >= SIGNING_KEY_REFRESH_S:
            self._operators = await operator_keys(self.nc)
            self._operators_at = now
        return self._operators

    async def key(self, sender: str, *, refresh: bool = False) -> str:
        """The sender's key ("" if it has none); `refresh`: the cached one just failed."""
        cached = self.keys.get(sender, "")
        if cached and not refresh:
            return cached
        now = time.monotonic()
        if now - self._read_at.get(sender, -SIGNING_KEY_REFRESH_S) < SIGNING_KEY_REFRESH_S:
            return cached
        if len(self._read_at) >= SENDER_KEYS_MAX:  # hostile sender names never pile up
            self._read_at.clear()
        found = await signing_key_of(self.nc, sender)
        self._read_at[sender] = now
        if found:
            self.keys[sender] = found
        return found or cached
