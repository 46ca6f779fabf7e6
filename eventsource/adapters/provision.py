"""Make the JetStream layout match streams.yaml: create, update, or refuse destructive changes.

Every step reads before it writes and writes the declared state, so a repeat converges: each
one is retried whole through transient unavailability (`adapters/retry.py`)."""

from __future__ import annotations

import asyncio
import enum
import functools
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from eventsource.adapters.registry import TOPOLOGY_KEY, partitions_from, registration_problem
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.topology import (
    Topology,
    inbox_consumer_config,
    replicas_for,
    stream_configs,
)
from eventsource.core.errors import ConfigError, TemporarilyUnavailable
from eventsource.core.subjects import (
    PARTICIPANTS_BUCKET,
    ledger_stream,
    participant_problem,
    partition_of,
)


class Action(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: Action
    detail: str = ""


class Registration(msgspec.Struct, frozen=True):
    participant: str
    partition: int


_STREAM_FIELDS = (
    "subjects", "storage", "num_replicas", "max_msg_size", "max_bytes", "duplicate_window",
    "allow_atomic", "allow_direct", "max_msgs_per_subject", "max_age", "discard", "deny_delete",
    "deny_purge", "allow_rollup_hdrs", "sources",
)  # fmt: skip
_LIMITS = ("num_replicas", "max_msgs_per_subject", "max_bytes", "max_age")
_CONSUMER_FIELDS = ("filter_subject", "ack_wait", "backoff", "max_deliver", "max_ack_pending")


async def _servers_for(nc: Client, topology: Topology, patience: float = 5.0) -> int:
    """The cluster size, waiting a little when an explicit replica count is not seen yet: a
    just-formed cluster announces its servers to clients by gossip, a moment after it is up."""
    size = cluster_size(nc)
    deadline = asyncio.get_running_loop().time() + patience
    wanted = topology.replicas if isinstance(topology.replicas, int) else 1
    while size < wanted and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        size = cluster_size(nc)
    return size


def cluster_size(nc: Client) -> int:
    """Servers in the cluster we are connected to, as the server itself announces them."""
    info = nc._server_info or {}
    announced = set(info.get("connect_urls") or [])
    # The INFO at connect time may predate the cluster's gossip; servers announced later are
    # added to the client's pool (nats-py does not update the INFO it keeps).
    pool = {srv.uri.netloc for srv in getattr(nc, "_server_pool", [])}
    return max(1, len(announced), len(pool))


def _norm(value: object) -> object:
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if hasattr(value, "as_dict"):
        return {k: _norm(v) for k, v in value.as_dict().items() if v not in (None, [], {})}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _differences(want: object, have: object, fields: tuple[str, ...]) -> dict[str, tuple]:
    diffs = {}
    for field in fields:
        wanted, actual = _norm(getattr(want, field)), _norm(getattr(have, field))
        if wanted in (None, [], 0, False) and actual in (None, [], 0, False, -1):
            continue
        if wanted != actual:
            diffs[field] = (actual, wanted)
    return diffs


def _destructive(diffs: dict[str, tuple]) -> list[str]:
    """Changes that can drop stored data, reroute messages, or weaken durability."""

    def shrinks(actual: object, wanted: object) -> bool:
        return wanted not in (-1, 0) and (actual in (-1, 0) or wanted < actual)  # type: ignore[operator]

    rerouting = ("subjects", "sources", "storage", "filter_subject")
    return [
        field
        for field, (actual, wanted) in diffs.items()
        if field in rerouting or (field in _LIMITS and shrinks(actual, wanted))
    ]


async def apply_topology(
    nc: Client, topology: Topology, *, dry_run: bool = False, force: bool = False
) -> list[Change]:
    js = nc.jetstream()
    replicas = replicas_for(topology, await _servers_for(nc, topology))
    configs = stream_configs(topology, replicas)
    changes = [await _apply_stream(js, config, dry_run=dry_run, force=force) for config in configs]
    if not dry_run:
        await wait_for_leaders(js, [config.name for config in configs])
        check = functools.partial(_check_partitions, js, topology, force=force)
        await transient_retry(check, what="check of the recorded partition count")
    for participant in topology.participants:
        changes.extend(await register_participant(nc, topology, participant, dry_run=dry_run))
    if not dry_run:
        for registration in await registered_participants(nc):
            if registration.participant not in topology.participants:
                changes.extend(await register_participant(nc, topology, registration.participant))
    return changes


async def wait_for_leaders(js, streams: list[str], timeout: float = 30.0) -> None:
    """A new replicated stream takes a moment to elect its leader; until then every write to it
    fails. Return once each stream answers with a leader (`timeout` per stream)."""
    for name in streams:
        has_leader = functools.partial(_has_leader, js, name)
        await transient_retry(
            has_leader, what=f"wait for a leader of stream {name}", retry_seconds=timeout
        )


async def _has_leader(js, name: str) -> None:
    info = await js.stream_info(name)
    if info.cluster is not None and not info.cluster.leader:
        raise TemporarilyUnavailable(f"stream {name} has no leader yet")


async def _apply_stream(js, config: StreamConfig, *, dry_run: bool, force: bool) -> Change:
    apply = functools.partial(_apply_stream_once, js, config, dry_run=dry_run, force=force)
    return await transient_retry(apply, what=f"create or update stream {config.name}")


async def _apply_stream_once(js, config: StreamConfig, *, dry_run: bool, force: bool) -> Change:
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        if not dry_run:
            await js.add_stream(config)
        return Change("stream", config.name, Action.CREATED, f"R{config.num_replicas}")
    diffs = _differences(config, info.config, _STREAM_FIELDS)
    if not diffs:
        return Change("stream", config.name, Action.UNCHANGED)
    detail = ", ".join(f"{f}: {a} -> {w}" for f, (a, w) in diffs.items())
    destructive = _destructive(diffs)
    if destructive and not force:
        return Change("stream", config.name, Action.REFUSED, f"{detail} (needs --force)")
    if not dry_run:
        await js.update_stream(config)
    return Change("stream", config.name, Action.UPDATED, detail)


async def _check_partitions(js, topology: Topology, *, force: bool) -> None:
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    try:
        entry = await kv.get(TOPOLOGY_KEY)
        recorded = partitions_from(entry.value)
    except NotFoundError:
        recorded = None
    except ConfigError:  # unreadable: only --force writes streams.yaml's count over it
        if not force:
            raise
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
    return partitions_from(entry.value)


def require_participant_name(participant: str) -> None:
    if (problem := participant_problem(participant)) is not None:
        raise ConfigError(problem)


async def register_participant(
    nc: Client, topology: Topology, participant: str, *, dry_run: bool = False
) -> list[Change]:
    """Give a participant its inbox consumer on every partition and a registry entry."""
    require_participant_name(participant)
    js = nc.jetstream()
    changes = []
    for k in range(topology.partitions):
        config = inbox_consumer_config(topology, participant, k)
        changes.append(await _apply_consumer(js, ledger_stream(k), config, dry_run=dry_run))
    if not dry_run:
        home = partition_of(participant, topology.partitions)
        put = functools.partial(_put_registration, js, Registration(participant, home))
        await transient_retry(put, what=f"register participant {participant}")
    return changes


async def _put_registration(js, registration: Registration) -> None:
    """An unconditional put of the same value: repeating it leaves the same entry."""
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    await kv.put(registration.participant, msgspec.json.encode(registration))


async def _apply_consumer(js, stream: str, config: ConsumerConfig, *, dry_run: bool) -> Change:
    apply = functools.partial(_apply_consumer_once, js, stream, config, dry_run=dry_run)
    return await transient_retry(
        apply, what=f"create or update consumer {stream}/{config.durable_name}"
    )


async def _apply_consumer_once(js, stream: str, config: ConsumerConfig, *, dry_run: bool) -> Change:
    name = f"{stream}/{config.durable_name}"
    try:
        info = await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        if not dry_run:
            await js.add_consumer(stream, config)
        return Change("consumer", name, Action.CREATED)
    diffs = _differences(config, info.config, _CONSUMER_FIELDS)
    if not diffs:
        return Change("consumer", name, Action.UNCHANGED)
    detail = ", ".join(f"{f}: {a} -> {w}" for f, (a, w) in diffs.items())
    if _destructive(diffs):
        return Change("consumer", name, Action.REFUSED, f"{detail} (recreate it by hand)")
    if not dry_run:
        await js.add_consumer(stream, config)
    return Change("consumer", name, Action.UPDATED, detail)


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
        if key == TOPOLOGY_KEY:
            continue
        entry = await kv.get(key)
        try:
            registrations.append(msgspec.json.decode(entry.value or b"", type=Registration))
        except msgspec.DecodeError as exc:  # also a ValidationError: JSON of another shape
            raise registration_problem(key, exc) from None
    return registrations
