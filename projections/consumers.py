"""A projection's durable consumers seen from outside the projector: their names, how far behind
they are, and deleting them (a rebuild)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from eventsource.adapters.retry import transient_retry


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
