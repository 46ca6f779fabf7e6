"""Reading the participant registry (the KV bucket `participants`) as something a person may have
changed by hand: every record is decoded on one guarded path, and what cannot be used is a
ConfigError in one line that says what to do, never a traceback or a silent empty answer."""

from __future__ import annotations

import functools

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry
from eventsource.core.errors import ConfigError
from eventsource.core.limits import PARTITIONS_MAX
from eventsource.core.subjects import PARTICIPANTS_BUCKET, inbox_consumer, ledger_stream

TOPOLOGY_KEY = "_topology"
_REINIT = (
    "`natsbank streams init --force` records streams.yaml's count again (the one the ledger was "
    "set up with)"
)


class TopologyRecord(msgspec.Struct, frozen=True):
    """What `streams init` records under `_topology`."""

    partitions: int = 1


def partitions_from(value: bytes | None) -> int:
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
    return record.partitions


def registration_problem(key: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"the registry's entry for {key!r:.40} is unreadable ({exc}): register the participant "
        f"again (`natsbank accounts open {key:.40} ACCOUNT`), or remove the entry "
        f"(`nats kv del {PARTICIPANTS_BUCKET} {key:.40}`)"
    )


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
            stream, durable = ledger_stream(k), inbox_consumer(participant, k)
            try:
                await transient_retry(
                    functools.partial(js.consumer_info, stream, durable),
                    what=f"read of consumer {stream}/{durable}",
                )
            except NotFoundError:
                raise ConfigError(
                    f"the inbox consumer {stream}/{durable} of {participant} is missing: "
                    "run `natsbank streams init`"
                ) from None
