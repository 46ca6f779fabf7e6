"""The participant registry (the KV bucket `participants`): who is registered, in which
partition, and the partition count `streams init` recorded."""

from __future__ import annotations

import functools

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.jetstream import read_last
from eventsource.adapters.retry import transient_retry
from eventsource.adapters.stream_reader import read_messages
from eventsource.adapters.topology import Topology
from eventsource.core.errors import ConfigError
from eventsource.core.history import KEEP_EVERYTHING, History
from eventsource.core.limits import PARTITIONS_MAX
from eventsource.core.model import is_token
from eventsource.core.subjects import (
    PARTICIPANTS_BUCKET,
    inbox_consumers,
    is_reserved,
    ledger_stream,
    participant_problem,
)

TOPOLOGY_KEY = "_topology"
REGISTRY_STREAM = f"KV_{PARTICIPANTS_BUCKET}"
KV_OPERATION = "KV-Operation"  # a KV delete or purge marker carries it (ADR-8)
_REINIT = (
    "`natsbank streams init --force` records streams.yaml's count again (the one the ledger was "
    "set up with)"
)


class TopologyRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """What `streams init` records under `_topology`: what every process must agree on."""

    partitions: int = 1
    horizon_ms: int | None = None  # the live horizon; None: keep everything live
    skew_ms: int = KEEP_EVERYTHING.skew_ms
    period_ms: int = KEEP_EVERYTHING.period_ms
    old_subjects: str = "accept"  # inbox.old_subjects: services refuse the old layout if "refuse"

    @property
    def accepts_old_subjects(self) -> bool:
        return self.old_subjects != "refuse"

    @property
    def history(self) -> History:
        return History(self.horizon_ms, self.skew_ms, self.period_ms)

    @classmethod
    def of(cls, topology: Topology) -> TopologyRecord:
        history = topology.history.to_history()
        return cls(
            topology.partitions,
            history.horizon_ms,
            history.skew_ms,
            history.period_ms,
            topology.inbox.old_subjects,
        )


def partitions_from(value: bytes | None) -> int:
    return record_from(value).partitions


def record_from(value: bytes | None) -> TopologyRecord:
    """The partition count of a `_topology` record, or a ConfigError: 0 would make every read
    an empty answer, and a count above the streams that exist a failure on every read."""
    try:
        record = msgspec.json.decode(value or b"{}", type=TopologyRecord)
    except msgspec.DecodeError as exc:  # also a ValidationError: JSON of another shape
        raise ConfigError(
            f"the registry's {TOPOLOGY_KEY} record is unreadable ({exc}): {_REINIT}"
        ) from None
    if not 1 <= record.partitions <= PARTITIONS_MAX:
        raise ConfigError(
            f"the registry's {TOPOLOGY_KEY} record says {record.partitions} partitions, not 1 to "
            f"{PARTITIONS_MAX}: {_REINIT}"
        )
    return record


def registration_problem(key: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"the registry's entry for {key!r:.40} is unreadable ({exc}): register the participant "
        f"again (`natsbank accounts open {key:.40} ACCOUNT`), or remove the entry "
        f"(`nats kv del {PARTICIPANTS_BUCKET} {key:.40}`)"
    )


class Registration(msgspec.Struct, frozen=True):
    participant: str
    partition: int
    # The nkey public key the participant signs its protocol messages with (PROTOCOL.md
    # section 12); "" in a registration older than signatures, or in the shared store's.
    signing_key: str = ""


async def check_partitions(js, topology: Topology, *, force: bool) -> None:
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    try:
        entry = await kv.get(TOPOLOGY_KEY)
        recorded = record_from(entry.value)
    except NotFoundError:
        recorded = None
    except ConfigError:  # unreadable: only --force writes streams.yaml's count over it
        if not force:
            raise
        recorded = None
    wanted = TopologyRecord.of(topology)
    if recorded is not None and recorded.partitions != wanted.partitions and not force:
        raise ConfigError(
            f"partitions was {recorded.partitions}, streams.yaml says {wanted.partitions}: this "
            "moves participants to other streams; use --force only on an empty system"
        )
    if recorded is not None and not force:
        problem = horizon_problem(recorded.history, wanted.history)
        if problem:
            raise ConfigError(problem)
    if recorded != wanted:
        await kv.put(TOPOLOGY_KEY, msgspec.json.encode(wanted))


def horizon_problem(recorded: History, wanted: History) -> str | None:
    """Why changing the live horizon from `recorded` to `wanted` is unsafe, or None. A service
    that still runs with the longer horizon takes an id for live that the archiver may already
    have moved out: it would be decided again (I3). Lengthening it, or a longer skew, is safe."""
    if recorded.horizon_ms is None:
        return None  # the ledger's deny_purge refuses a horizon on its own (provision.py)
    if wanted.horizon_ms is None:
        return (
            "history.horizon was finite: forever would make services take every id for live, "
            "and an archived id for a new one; keep a horizon (a longer one is safe)"
        )
    if wanted.horizon_ms < recorded.horizon_ms:
        return (
            f"history.horizon was {recorded.horizon_ms // 1000}s: a shorter one lets "
            "running services take archived ids for new ones; stop every service first, then "
            "use --force"
        )
    if wanted.skew_ms < recorded.skew_ms:
        return "history.max_clock_skew may only grow (stop every service first, then --force)"
    return None


async def partitions_of(nc: Client) -> int:
    """The partition count recorded by `streams init`; commands never guess it."""
    return (await layout_of(nc)).partitions


async def layout_of(nc: Client) -> TopologyRecord:
    """What `streams init` recorded (partitions, history). A read: retried through transient
    unavailability."""

    async def read():
        kv = await nc.jetstream().key_value(PARTICIPANTS_BUCKET)
        return await kv.get(TOPOLOGY_KEY)

    try:
        entry = await transient_retry(read, what="read of the recorded partition count")
    except NotFoundError:
        raise ConfigError("the streams are not set up: run `natsbank streams init`") from None
    return record_from(entry.value)


def require_participant_name(participant: str) -> None:
    if (problem := participant_problem(participant)) is not None:
        raise ConfigError(problem)


async def put_registration(js, registration: Registration) -> None:
    """An unconditional put of the same value: repeating it leaves the same entry."""
    kv = await js.key_value(PARTICIPANTS_BUCKET)
    await kv.put(registration.participant, msgspec.json.encode(registration))


async def registered_participants(nc: Client) -> list[Registration]:
    """Every registration, exactly: read to the registry stream's last sequence as its leader
    has it (a KV listing may be answered by a replica that lags, and a registration it missed
    would be missed by whoever decides from it)."""
    prefix = f"$KV.{PARTICIPANTS_BUCKET}."
    latest: dict[str, bytes] = {}
    try:
        reading = read_messages(nc, REGISTRY_STREAM, [f"{prefix}>"], last_per_subject=True)
        async for msg in reading:
            key = msg.subject[len(prefix) :]
            if (msg.headers or {}).get(KV_OPERATION):
                latest.pop(key, None)  # deleted or purged
            elif not key.startswith("_"):  # the registry's own keys (_topology, _inboxes)
                latest[key] = msg.data
    except NotFoundError:
        return []  # not set up yet
    registrations = []
    for key in sorted(latest):
        try:
            registrations.append(msgspec.json.decode(latest[key], type=Registration))
        except msgspec.DecodeError as exc:  # also a ValidationError: JSON of another shape
            raise registration_problem(key, exc) from None
    return registrations


def registry_subject(key: str) -> str:
    """The subject of registry entry `key` (a participant, or a reserved key)."""
    return f"$KV.{PARTICIPANTS_BUCKET}.{key}"


async def is_registered(nc: Client, participant: str) -> bool:
    """Whether the registry has `participant`, as the registry stream's leader holds it (a
    replica may not have a registration made a moment before yet; every credential may ask the
    leader). A read: retried through unavailability."""
    if not is_token(participant) or is_reserved(participant):
        return False
    last = await read_last(nc, REGISTRY_STREAM, registry_subject(participant), leader=True)
    return last is not None and bool(last[0])  # never registered, or a delete marker: no


async def require_registered(nc: Client, participants: list[str], partitions: int) -> None:
    """Each participant has its registry entry and its inbox consumer on every partition: a
    service of an unregistered participant would otherwise retry its fetches for ever. Reads,
    retried through transient unavailability."""
    js = nc.jetstream()
    kv = await transient_retry(
        functools.partial(js.key_value, PARTICIPANTS_BUCKET), what="read of the registry"
    )
    for participant in participants:
        try:
            await transient_retry(
                functools.partial(kv.get, participant), what=f"read of participant {participant}"
            )
        except NotFoundError:  # nats-py: KeyNotFoundError, KeyDeletedError
            raise ConfigError(
                f"{participant} is not registered: run `natsbank accounts open {participant} "
                "ACCOUNT`, or list it under participants in streams.yaml and run "
                "`natsbank streams init`"
            ) from None
        for k in range(partitions):
            for durable in inbox_consumers(participant, k):
                await require_consumer(
                    js,
                    ledger_stream(k),
                    durable,
                    f"the inbox consumer {ledger_stream(k)}/{durable} of {participant} is "
                    "missing: run `natsbank streams init`",
                )


async def require_consumer(js, stream: str, durable: str, missing: str) -> None:
    """The consumer exists (a read, retried through unavailability), or a ConfigError with
    the line `missing`."""
    try:
        await transient_retry(
            functools.partial(js.consumer_info, stream, durable),
            what=f"read of consumer {stream}/{durable}",
        )
    except NotFoundError:
        raise ConfigError(missing) from None
