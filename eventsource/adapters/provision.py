"""Make the JetStream layout match streams.yaml: create, update, or refuse destructive changes.

Every step reads before it writes and writes the declared state, so a repeat converges: each
one is retried whole through transient unavailability (`adapters/retry.py`)."""

from __future__ import annotations

import asyncio
import enum
import functools
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from eventsource.adapters.inbox_subjects import SubjectsOf, sync_inbox_subjects
from eventsource.adapters.key_registry import add_operator_key, signing_key_of
from eventsource.adapters.registry import (
    Registration,
    check_partitions,
    put_registration,
    registered_participants,
    require_participant_name,
)
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.signing_key_file import SigningKeys
from eventsource.adapters.signing_keys import operator_signer, registered_dev_signer
from eventsource.adapters.topology import (
    Topology,
    inbox_consumer_configs,
    replicas_for,
    stream_configs,
    weakened_guarantees,
)
from eventsource.core.errors import TemporarilyUnavailable
from eventsource.core.subjects import (
    ledger_stream,
    ledger_subjects,
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


_STREAM_FIELDS = (
    "subjects", "storage", "num_replicas", "max_msg_size", "max_bytes", "duplicate_window",
    "allow_atomic", "allow_direct", "max_msgs_per_subject", "max_age", "discard", "deny_delete",
    "deny_purge", "allow_rollup_hdrs", "sources",
)  # fmt: skip
_LIMITS = (
    "num_replicas", "max_msgs_per_subject", "max_bytes", "max_age", "max_msg_size", "max_deliver",
)  # fmt: skip
_CONSUMER_FIELDS = (
    "filter_subject", "filter_subjects", "ack_wait", "backoff", "max_deliver", "max_ack_pending",
)  # fmt: skip


_NO_PURGE_EVER = (
    "history.horizon needs a ledger created with it: this one was created to keep everything "
    "(deny_purge), and JetStream never lifts that; provision a new system with the horizon"
)


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

    def narrows(actual: object, wanted: object) -> bool:  # widening subjects reroutes nothing
        return not set(actual or []) <= set(wanted or [])

    rerouting = ("sources", "storage", "filter_subject", "filter_subjects")
    return [
        field
        for field, (actual, wanted) in diffs.items()
        if field in rerouting
        or (field == "subjects" and narrows(actual, wanted))
        or (field in _LIMITS and shrinks(actual, wanted))
    ]


async def apply_topology(
    nc: Client,
    topology: Topology,
    *,
    dry_run: bool = False,
    force: bool = False,
    signing_keys: SigningKeys | None = None,
) -> list[Change]:
    """Streams, consumers and registrations; each participant is registered with its key in
    `signing_keys` (a deployment's file: one it lacks is refused before anything changes), or
    without it with its dev key, and so is the operator's key that signs funding."""
    weak = weakened_guarantees(topology)
    if weak and not force:
        return [
            Change("setting", name, Action.REFUSED, f"{why} (needs --force)") for name, why in weak
        ]
    js = nc.jetstream()
    replicas = replicas_for(topology, await _servers_for(nc, topology))
    registered = [r.participant for r in await registered_participants(nc)]
    names = list(dict.fromkeys([*topology.participants, *registered]))
    if signing_keys is not None:
        signing_keys.require(names)
    configs = stream_configs(topology, replicas, names)
    changes = [await _apply_stream(js, config, dry_run=dry_run, force=force) for config in configs]
    if not dry_run:
        await wait_for_leaders(js, [config.name for config in configs])
        check = functools.partial(check_partitions, js, topology, force=force)
        await transient_retry(check, what="check of the recorded partition count")
        await add_operator_key(nc, operator_key(signing_keys))  # funding's signer
    for participant in names:
        key = signing_keys.of(participant) if signing_keys is not None else None
        changes.extend(
            await register_participant(
                nc, topology, participant, dry_run=dry_run, force=force, signing_key=key
            )
        )
    return changes


def operator_key(signing_keys: SigningKeys | None) -> str:
    """The operator's public key to record: the deployment's, else the dev operator key's."""
    return signing_keys.operator if signing_keys is not None else operator_signer().public_key


def refused_settings(topology: Topology) -> list[Change]:
    """The settings of `topology` that break a guarantee: applied only with --force."""
    return [
        Change("setting", name, Action.REFUSED, f"{why} (needs --force)")
        for name, why in weakened_guarantees(topology)
    ]


def ledger_inboxes(topology: Topology) -> SubjectsOf:
    """The ledger partitions' subjects for a list of registered participants."""
    return lambda names: {
        ledger_stream(k): ledger_subjects(k, names) for k in range(topology.partitions)
    }


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
    if diffs.get("deny_purge") == (True, False):
        return Change("stream", config.name, Action.REFUSED, _NO_PURGE_EVER)
    destructive = _destructive(diffs)
    if destructive and not force:
        return Change("stream", config.name, Action.REFUSED, f"{detail} (needs --force)")
    if not dry_run:
        await js.update_stream(config)
    return Change("stream", config.name, Action.UPDATED, detail)


async def register_participant(
    nc: Client,
    topology: Topology,
    participant: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    signing_key: str | None = None,
) -> list[Change]:
    """Give a participant its inbox consumer on every partition and a registry entry naming
    its signing key: `signing_key` (an nkey public key), else the one it is registered with,
    else its dev key (its dev service nkey, or one made now: adapters/signing_keys.py)."""
    require_participant_name(participant)
    js = nc.jetstream()
    changes = []
    for k in range(topology.partitions):
        for config in inbox_consumer_configs(topology, participant, k):
            consumer = await _apply_consumer(
                js, ledger_stream(k), config, dry_run=dry_run, force=force
            )
            changes.append(consumer)
    if not dry_run:
        home = partition_of(participant, topology.partitions)
        key = signing_key or await signing_key_of(nc, participant)
        key = key or registered_dev_signer(participant).public_key
        put = functools.partial(put_registration, js, Registration(participant, home, key))
        inboxes = functools.partial(
            sync_inbox_subjects,
            nc,
            ledger_inboxes(topology),
            functools.partial(registered_participants, nc),
        )
        await inboxes(extra=[participant])  # its inbox is open before anyone can send to it
        await transient_retry(put, what=f"register participant {participant}")
        await inboxes()  # and stays open whatever registration raced this one
    return changes


async def _apply_consumer(
    js, stream: str, config: ConsumerConfig, *, dry_run: bool, force: bool = False
) -> Change:
    apply = functools.partial(
        _apply_consumer_once, js, stream, config, dry_run=dry_run, force=force
    )
    return await transient_retry(
        apply, what=f"create or update consumer {stream}/{config.durable_name}"
    )


async def _apply_consumer_once(
    js, stream: str, config: ConsumerConfig, *, dry_run: bool, force: bool
) -> Change:
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
    if _destructive(diffs) and not force:
        return Change("consumer", name, Action.REFUSED, f"{detail} (needs --force)")
    if not dry_run:
        await js.add_consumer(stream, config)
    return Change("consumer", name, Action.UPDATED, detail)
