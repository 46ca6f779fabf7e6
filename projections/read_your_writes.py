"""Read-your-writes: wait until a projection has applied given ledger positions, so that a query
made right after sees what the ledger held at those positions."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client

from eventsource.adapters.jetstream import leader_last_sequence
from projections.source import Source
from projections.store import ProjectionDb

POLL = 0.05


async def wait_applied(
    store: ProjectionDb, wanted: dict[str, int], timeout: float
) -> dict[str, int]:
    """Poll the open `store` until each stream of `wanted` is at or past its position, or
    `timeout` seconds pass; returns the applied position of each wanted stream (0 if none)."""
    deadline = time.monotonic() + timeout
    while True:
        stored = {p.stream: p.seq for p in await store.positions()}
        applied = {stream: stored.get(stream, 0) for stream in wanted}
        if all(applied[s] >= seq for s, seq in wanted.items()) or time.monotonic() > deadline:
            return applied
        await asyncio.sleep(POLL)


async def leader_positions(nc: Client, source: Source) -> dict[str, int]:
    """Per followed stream, the sequence of the last state event the projection (of `source`)
    takes, as the stream leader has it now: what a rebuild must reach. A consumer's "nothing
    pending" is no proof, as its replica may lag."""
    return {
        stream: await leader_last_sequence(nc, stream, [source.filter(k)])
        for k, stream in enumerate(source.streams)
    }


def behind(wanted: dict[str, int], applied: dict[str, int]) -> list[str]:
    """One phrase per stream that is not there yet, e.g. 'ledger_0 position 12, not yet 40'."""
    return [
        f"{stream} position {applied.get(stream, 0)}, not yet {seq}"
        for stream, seq in sorted(wanted.items())
        if applied.get(stream, 0) < seq
    ]
