"""The participant registry (the KV bucket `participants`): who is registered, in which
partition, and the partition count `streams init` recorded."""

from __future__ import annotations

import functools

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry
from eventsource.adapters.topology import Topology
from eventsource.core.errors import ConfigError
from eventsource.core.model import is_token
from eventsource.core.subjects import PARTICIPANTS_BUCKET, RESERVED_NAMES, is_reserved

TOPOLOGY_KEY = "_topology"


class Registration(msgspec.Struct, frozen=True):
    participant: str
    partition: int


async def check_partitions(js, topology: Topology, *, force: bool) -> None:
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    try:
        entry = await kv.get(TOPOLOGY_KEY)
        recorded = msgspec.json.decode(entry.value or b"{}").get("partitions")
    except NotFoundError:
        recorded = None
    if recorded not in (None, topology.partitions) and not force:
        raise ConfigError(
            f"partitions was {recorded}, streams.yaml says {topology.partitions}: this moves "
            "participants to other streams; use --force only on an empty system"
        )
    if recorded != topology.partitions:
        await kv.put(TOPOLOGY_KEY, msgspec.json.encode({"partitions": topology.partitions}))


async def partitions_of(nc: Client) -> int:
    """The partition count recorded by `streams init`; commands never guess it. A read:
    retried through transient unavailability."""

    async def read():
        kv = await nc.jetstream().key_value(PARTICIPANTS_BUCKET)
        return await kv.get(TOPOLOGY_KEY)

    try:
        entry = await transient_retry(read, what="read of the recorded partition count")
    except NotFoundError:
        raise ConfigError("the streams are not set up: run `natsbank streams init`") from None
    return int(msgspec.json.decode(entry.value or b"{}").get("partitions", 1))


def require_participant_name(participant: str) -> None:
    if not is_token(participant) or is_reserved(participant):
        raise ConfigError(
            f"{participant!r} cannot be a participant: use A-Z a-z 0-9 _ - (not starting with _), "
            f"and none of {', '.join(sorted(RESERVED_NAMES))}"
        )


async def put_registration(js, registration: Registration) -> None:
    """An unconditional put of the same value: repeating it leaves the same entry."""
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    await kv.put(registration.participant, msgspec.json.encode(registration))


async def registered_participants(nc: Client) -> list[Registration]:
    read = functools.partial(_registered_participants_once, nc.jetstream())
    return await transient_retry(read, what="read of the participant registry")


async def _registered_participants_once(js) -> list[Registration]:
    try:
        kv = await js.key_value(PARTICIPANTS_BUCKET)
        keys = await kv.keys()
    except NotFoundError:
        return []
    except Exception as exc:  # nats-py raises NoKeysError for an empty bucket
        if type(exc).__name__ == "NoKeysError":
            return []
        raise
    registrations = []
    for key in keys:
        if key.startswith("_"):  # the registry's own keys (_topology, _inboxes)
            continue
        entry = await kv.get(key)
        registrations.append(msgspec.json.decode(entry.value, type=Registration))
    return registrations


async def is_registered(nc: Client, participant: str) -> bool:
    """Whether the registry has `participant` (a read: retried through unavailability)."""

    async def read() -> bool:
        kv = await nc.jetstream().key_value(PARTICIPANTS_BUCKET)
        try:
            await kv.get(participant)
            return True
        except NotFoundError:
            return False

    if not is_token(participant) or is_reserved(participant):
        return False
    return await transient_retry(read, what=f"registry read of {participant}")
