"""A projection's durable consumers: their names, re-creating one at a position (the projector's
rewind), how far behind they are, and deleting them (a rebuild)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry

ACK_WAIT = 60.0  # seconds a fetched batch may take to commit before it is delivered again


def consumer_name(name: str, partition: int) -> str:
    return f"projector_{name}_{partition}"


def projection_name(backend: str, participant: str | None) -> str:
    return f"{backend}_{participant}" if participant else backend


async def backlog(
    nc: Client, name: str, streams: Sequence[str]
) -> dict[int, tuple[int, int] | None]:
    """Per followed stream, (events not yet delivered, delivered but not acked); None if no
    consumer."""
    js = nc.jetstream()
    result: dict[int, tuple[int, int] | None] = {}
    for k, stream in enumerate(streams):
        read = functools.partial(js.consumer_info, stream, consumer_name(name, k))
        try:
            info = await transient_retry(read, what=f"read of consumer {consumer_name(name, k)}")
        except NotFoundError:
            result[k] = None
            continue
        result[k] = (info.num_pending or 0, info.num_ack_pending or 0)
    return result


async def caught_up(nc: Client, name: str, streams: Sequence[str]) -> bool:
    """Every followed stream's consumer exists and has nothing pending or unacked."""
    counts = await backlog(nc, name, streams)
    return all(c == (0, 0) for c in counts.values())


async def delete_consumers(nc: Client, name: str, streams: Sequence[str]) -> None:
    js = nc.jetstream()
    for k, stream in enumerate(streams):
        delete = functools.partial(js.delete_consumer, stream, consumer_name(name, k))
        with contextlib.suppress(NotFoundError):  # also after a repeat of a delete that landed
            await transient_retry(delete, what=f"delete consumer {consumer_name(name, k)}")


async def recreate_at(
    js: JetStreamContext, stream: str, durable: str, filter_subject: str, start: int
) -> None:
    """The projector's consumer, deleted and added again to deliver from stream sequence
    `start` (the database position + 1): a repeat leaves the same consumer."""
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        ack_policy=AckPolicy.ALL,  # one ack per batch, after its commit: it covers the batch
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        replay_policy=ReplayPolicy.INSTANT,
        ack_wait=ACK_WAIT,
        max_deliver=-1,
        max_ack_pending=-1,
    )
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(stream, durable)
    await js.add_consumer(stream, config)
