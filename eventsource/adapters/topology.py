"""streams.yaml: the schema, the loader, and the JetStream configs it stands for."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import msgspec
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ReplayPolicy,
    StorageType,
    StreamConfig,
)

from eventsource.core.errors import ConfigError
from eventsource.core.history import History
from eventsource.core.limits import PARTITIONS_MAX
from eventsource.core.messages import MAX_MESSAGE_BYTES
from eventsource.core.subjects import (
    DEAD_LETTER_STREAM,
    PARTICIPANTS_BUCKET,
    inbox_consumer,
    ledger_stream,
    ledger_subjects,
    protocol_filters,
    submit_consumer,
    submit_filter,
)

_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 2m, 90d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


class LedgerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    storage: Literal["file", "memory"] = "file"
    max_msg_size: int = 262144
    duplicate_window: str = "2m"
    max_bytes: int = -1

    def __post_init__(self) -> None:
        seconds(self.duplicate_window)


class DeadLetterConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    storage: Literal["file", "memory"] = "file"
    max_age: str = "90d"

    def __post_init__(self) -> None:
        seconds(self.max_age)


class InboxConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ack_wait: str = "10s"
    backoff: list[str] = msgspec.field(default_factory=lambda: ["10s", "30s", "1m", "2m"])
    max_deliver: int = -1
    max_ack_pending: int = 20000
    # Inbox subjects without the sender token (the layout before issue 13): "accept" them
    # during the migration, or "refuse" them (dead-lettered SUBJECT_MISMATCH) once every sender
    # writes the new layout and the consumers hold no old message (docs/PROTOCOL.md section 3).
    old_subjects: Literal["accept", "refuse"] = "accept"

    def __post_init__(self) -> None:
        for text in (self.ack_wait, *self.backoff):
            seconds(text)
        if self.backoff and seconds(self.backoff[0]) != seconds(self.ack_wait):
            raise ValueError("the server uses backoff[0] as the ack wait: make them equal")
        # nats-server refuses the consumer otherwise (err_code 10116); -1 is "never give up".
        if self.max_deliver != -1 and self.max_deliver <= len(self.backoff):
            raise ValueError(
                f"max_deliver must be -1 (never give up) or more than the {len(self.backoff)} "
                "backoff values"
            )


class HistoryConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How long final transfers stay in the live ledger before the archive takes them."""

    horizon: str = "forever"  # or a duration: 7d, 36h
    period: str = "1h"  # how much the archiver moves at a time
    max_clock_skew: str = "5m"  # how far a client's clock (in its ids) may be off

    def __post_init__(self) -> None:
        period, skew = seconds(self.period), seconds(self.max_clock_skew)
        if self.horizon != "forever":
            horizon = seconds(self.horizon)
            if horizon < period or horizon <= 2 * skew:
                raise ValueError(
                    "history.horizon must be at least one period and more than twice max_clock_skew"
                )

    def to_history(self) -> History:
        horizon = None if self.horizon == "forever" else round(seconds(self.horizon) * 1000)
        return History(
            horizon, round(seconds(self.max_clock_skew) * 1000), round(seconds(self.period) * 1000)
        )


class Topology(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    partitions: int = 1
    replicas: int | Literal["auto"] = "auto"
    ledger: LedgerConfig = msgspec.field(default_factory=LedgerConfig)
    dead_letter: DeadLetterConfig = msgspec.field(default_factory=DeadLetterConfig)
    inbox: InboxConfig = msgspec.field(default_factory=InboxConfig)
    history: HistoryConfig = msgspec.field(default_factory=HistoryConfig)
    participants: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= PARTITIONS_MAX:
            raise ValueError(f"partitions must be between 1 and {PARTITIONS_MAX}")
        if self.replicas != "auto" and self.replicas not in (1, 3, 5):
            raise ValueError("replicas must be auto, 1, 3 or 5")


def load_topology(path: str | Path | None) -> Topology:
    """Read streams.yaml; a missing path means the built-in defaults (equal to the shipped file)."""
    if path is None:
        candidate = Path("streams.yaml")
        if not candidate.exists():
            return Topology()
        path = candidate
    path = Path(path)
    try:
        return msgspec.yaml.decode(path.read_bytes(), type=Topology)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def weakened_guarantees(topology: Topology) -> list[tuple[str, str]]:
    """(setting, why) for each setting that would break a guarantee; `streams init` applies
    them only with --force."""
    found = []
    ledger, inbox = topology.ledger, topology.inbox
    if ledger.max_msg_size < MAX_MESSAGE_BYTES:
        found.append((
            "ledger.max_msg_size",
            f"{ledger.max_msg_size} is below a full protocol message ({MAX_MESSAGE_BYTES} bytes): "
            "the ledger would refuse submissions and protocol messages",
        ))  # fmt: skip
    if ledger.max_bytes != -1:
        found.append((
            "ledger.max_bytes",
            f"{ledger.max_bytes} makes the ledger drop or refuse events: it is the source of truth",
        ))  # fmt: skip
    if inbox.max_deliver != -1:
        found.append((
            "inbox.max_deliver",
            f"{inbox.max_deliver} stops redelivering after that many tries: an ACKed transfer "
            "could stay unfinished (never give up is the default; see submit --deadline)",
        ))  # fmt: skip
    return found


def replicas_for(topology: Topology, cluster_size: int) -> int:
    if topology.replicas == "auto":
        return 3 if cluster_size >= 3 else 1
    if topology.replicas > cluster_size:
        raise ConfigError(f"replicas {topology.replicas} needs at least that many servers")
    return topology.replicas


def _storage(name: str) -> StorageType:
    return StorageType.FILE if name == "file" else StorageType.MEMORY


# Every revision of a key is an event, so the ledger keeps them all. KV clients (nats-py, the
# `nats kv` tool) refuse a bucket whose history is unlimited (-1), so "all" is spelled as the
# largest int32: an account would need two billion changes to reach it.
LEDGER_HISTORY = 2**31 - 1


def stream_configs(
    topology: Topology, replicas: int, participants: Iterable[str] = ()
) -> list[StreamConfig]:
    """The ledger partitions (each one a KV bucket with full history, taking the inboxes of
    `participants`), the participant registry, and the dead letters."""
    ledger = topology.ledger
    # A live horizon: the archiver purges what it archived. Else nothing may ever be removed.
    keeps_everything = not topology.history.to_history().bounded
    configs = [
        StreamConfig(
            name=ledger_stream(k),
            subjects=ledger_subjects(k, participants),
            storage=_storage(ledger.storage),
            num_replicas=replicas,
            max_msg_size=ledger.max_msg_size,
            max_bytes=ledger.max_bytes,
            max_msgs_per_subject=LEDGER_HISTORY,
            duplicate_window=seconds(ledger.duplicate_window),
            allow_atomic=True,
            allow_direct=True,
            deny_delete=True,
            deny_purge=keeps_everything,
            discard=DiscardPolicy.NEW,
        )
        for k in range(topology.partitions)
    ]
    configs.append(_bucket(PARTICIPANTS_BUCKET, replicas, ledger.storage))
    configs.append(
        StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=["nb.dlq.>"],
            storage=_storage(topology.dead_letter.storage),
            num_replicas=replicas,
            max_age=seconds(topology.dead_letter.max_age),
            duplicate_window=120,
            allow_direct=True,  # listings under authorization read by batched direct gets
        )
    )
    return configs


def _bucket(bucket: str, replicas: int, storage: str) -> StreamConfig:
    """A KV bucket (ADR-8 layout) so that nats-py and the `nats kv` tool can read it."""
    return StreamConfig(
        name=f"KV_{bucket}",
        subjects=[f"$KV.{bucket}.>"],
        storage=_storage(storage),
        num_replicas=replicas,
        max_msgs_per_subject=1,
        discard=DiscardPolicy.NEW,
        allow_rollup_hdrs=True,
        deny_delete=True,
        allow_direct=True,
        duplicate_window=120,
    )


def inbox_consumer_configs(
    topology: Topology, participant: str, partition: int
) -> list[ConsumerConfig]:
    """A participant's two consumers on one partition: its submissions, and its protocol
    messages (postings, results, confirms); the same delivery settings for both."""
    submit = _inbox_consumer_config(topology, submit_consumer(participant, partition))
    submit.filter_subject = submit_filter(partition, participant)
    protocol = _inbox_consumer_config(topology, inbox_consumer(participant, partition))
    protocol.filter_subjects = protocol_filters(partition, participant)
    return [submit, protocol]


def _inbox_consumer_config(topology: Topology, durable: str) -> ConsumerConfig:
    inbox = topology.inbox
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        replay_policy=ReplayPolicy.INSTANT,
        ack_wait=seconds(inbox.ack_wait),
        backoff=[seconds(b) for b in inbox.backoff] or None,
        max_deliver=inbox.max_deliver,
        max_ack_pending=inbox.max_ack_pending,
        max_waiting=512,
    )


def quick_redelivery(first: float = 2.0, replicas: int | Literal["auto"] = "auto") -> Topology:
    """The default layout with the inbox redelivering after `first` seconds, doubling to 30 s:
    the same clock as core mode's resends, so the modes compare fairly under faults."""
    steps, delay = [], first
    while delay < 30:
        steps.append(f"{round(delay * 1000)}ms")
        delay *= 2
    inbox = InboxConfig(ack_wait=steps[0], backoff=[*steps, "30s"])
    return Topology(replicas=replicas, inbox=inbox)
