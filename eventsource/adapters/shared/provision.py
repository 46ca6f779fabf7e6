"""The shared store's JetStream layout: the stream `KV_shared` (the ledger's settings under its
own name and subjects), the participant registry, the dead letters, and one submission
consumer per participant (`shared_<P>`), shared by all of P's instances."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import msgspec
from msgspec.structs import replace as replace_struct
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from eventsource.adapters.inbox_subjects import sync_inbox_subjects
from eventsource.adapters.key_registry import add_operator_key
from eventsource.adapters.provision import (
    Change,
    _apply_consumer,
    _apply_stream,
    _servers_for,
    operator_key,
    refused_settings,
    wait_for_leaders,
)
from eventsource.adapters.registry import (
    Registration,
    registered_participants,
    require_consumer,
    require_participant_name,
)
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.signing_key_file import SigningKeys
from eventsource.adapters.topology import (
    Topology,
    inbox_consumer_configs,
    replicas_for,
    stream_configs,
)
from eventsource.core.errors import ConfigError
from eventsource.core.shared.layout import (
    SHARED_STREAM,
    shared_consumer,
    shared_subjects,
    submit_filter,
)
from eventsource.core.subjects import DEAD_LETTER_STREAM, PARTICIPANTS_BUCKET


def shared_stream_configs(
    topology: Topology, replicas: int, participants: Iterable[str] = ()
) -> list[StreamConfig]:
    """KV_shared, then the registry and the dead letters exactly as the independent store has
    them (both stores may live on one cluster and share those two)."""
    ledger, *others = stream_configs(replace_struct(topology, partitions=1), replicas)
    subjects = shared_subjects(participants)
    shared = dataclasses.replace(ledger, name=SHARED_STREAM, subjects=subjects)
    kept = [c for c in others if c.name in (f"KV_{PARTICIPANTS_BUCKET}", DEAD_LETTER_STREAM)]
    return [shared, *kept]


def shared_consumer_config(topology: Topology, participant: str) -> ConsumerConfig:
    """The inbox consumer's settings (ack wait, BackOff, never give up) on P's submissions."""
    return dataclasses.replace(
        inbox_consumer_configs(topology, participant, 0)[0],
        durable_name=shared_consumer(participant),
        filter_subject=submit_filter(participant),
    )


async def apply_shared_topology(
    nc: Client,
    topology: Topology,
    *,
    dry_run: bool = False,
    force: bool = False,
    signing_keys: SigningKeys | None = None,
) -> list[Change]:
    """The shared store sends no protocol messages: of `signing_keys` it records only the
    operator's (funding is signed as in the independent store)."""
    if (refused := refused_settings(topology)) and not force:
        return refused
    js = nc.jetstream()
    replicas = replicas_for(topology, await _servers_for(nc, topology))
    registered = [r.participant for r in await registered_participants(nc)]
    names = list(dict.fromkeys([*topology.participants, *registered]))
    configs = shared_stream_configs(topology, replicas, names)
    changes = [await _apply_stream(js, config, dry_run=dry_run, force=force) for config in configs]
    if not dry_run:
        await wait_for_leaders(js, [config.name for config in configs])
        await add_operator_key(nc, operator_key(signing_keys))  # funding's signer
    for participant in names:
        changes.extend(
            await register_shared_participant(
                nc, topology, participant, dry_run=dry_run, force=force
            )
        )
    return changes


async def register_shared_participant(
    nc: Client, topology: Topology, participant: str, *, dry_run: bool = False, force: bool = False
) -> list[Change]:
    """P's submission consumer on KV_shared, and a registry entry if P has none yet (an
    independent-store registration, which names P's ledger partition, is kept)."""
    require_participant_name(participant)
    js = nc.jetstream()
    config = shared_consumer_config(topology, participant)
    change = await _apply_consumer(js, SHARED_STREAM, config, dry_run=dry_run, force=force)
    if not dry_run:
        create = functools.partial(_create_registration, js, Registration(participant, 0))
        inboxes = functools.partial(
            sync_inbox_subjects,
            nc,
            lambda names: {SHARED_STREAM: shared_subjects(names)},
            functools.partial(registered_participants, nc),
        )
        await inboxes(extra=[participant])  # its inbox is open before anyone can send to it
        await transient_retry(create, what=f"register participant {participant}")
        await inboxes()  # and stays open whatever registration raced this one
    return [change]


async def _create_registration(js, registration: Registration) -> None:
    """A KV create (expects no revision): a repeat after it landed finds the key and keeps it."""
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    try:
        await kv.create(registration.participant, msgspec.json.encode(registration))
    except Exception as exc:  # nats-py: KeyWrongLastSequenceError when it exists
        if "WrongLastSequence" not in type(exc).__name__:
            raise


async def require_shared_store(nc: Client, participants: list[str] = ()) -> None:
    """A clear error, not a retry loop, when the shared store or a participant's consumer is
    missing (only "no answer yet" is retried: these are reads)."""
    js = nc.jetstream()
    try:
        await transient_retry(
            functools.partial(js.stream_info, SHARED_STREAM), what=f"read of {SHARED_STREAM}"
        )
    except NotFoundError:
        raise ConfigError(
            "the shared store is not set up: run `natsbank streams init --store shared`"
        ) from None
    for participant in participants:
        await require_consumer(
            js,
            SHARED_STREAM,
            shared_consumer(participant),
            f"{participant} is not registered in the shared store: run "
            f"`natsbank accounts open {participant} ACCOUNT --store shared`",
        )
