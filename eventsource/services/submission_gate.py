"""Submissions are decided in the order they were ACKed, whatever the number of instances.

Two submissions that reuse one transfer id with other content must not race: the content ACKed
first owns the id, the other is an ID_CONFLICT (docs/PROTOCOL.md section 7). Several instances
share a participant's submission consumer, so a later submission can be fetched by one instance
while an earlier one is still held by another. Before deciding submissions, an instance waits
until every earlier submission is acked (the consumer's ack floor, which the server keeps), so
an earlier content is always committed first and the later one finds it. No lock is taken: an
instance that waits too long (the holder died, and its messages come back only after the ack
wait) hands its own submissions back for a little later, so that they cannot block the one
that holds the way."""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.jetstream import first_sequence_from
from eventsource.core.limits import (
    KEEP_ALIVE_S,
    SUBMISSION_GATE_POLL_S,
    SUBMISSION_GATE_RETURN_DELAY_S,
    SUBMISSION_GATE_WAIT_S,
)

log = logging.getLogger("natsbank.service")


class SubmissionGate:
    def __init__(self, nc: Client, consumers: set[str]) -> None:
        self.nc = nc
        self.consumers = consumers  # the durable names that carry submissions
        self._next: dict[str, int] = {}  # consumer -> the consumer sequence expected next
        self.waits = 0  # gates that had to wait for another instance
        self.returned = 0  # submissions handed back because the way stayed blocked

    def submissions(self, msgs: list[Msg]) -> list[Msg]:
        return [m for m in msgs if m.reply and m.metadata.consumer in self.consumers]

    async def admit(self, msgs: list[Msg]) -> list[Msg]:
        """`msgs` without the submissions that may not be decided yet (those are handed back,
        unacked, to be delivered again a moment later)."""
        held = self.submissions(msgs)
        if not held:
            return msgs
        by_consumer: dict[str, list[Msg]] = {}
        for msg in held:
            by_consumer.setdefault(msg.metadata.consumer, []).append(msg)
        returned: list[Msg] = []
        for consumer, mine in by_consumer.items():
            if not await self._open(consumer, mine):
                returned += mine
        for msg in returned:
            self.returned += 1
            await _quietly(msg.nak(delay=SUBMISSION_GATE_RETURN_DELAY_S))
        if returned:
            log.info("%d submission(s) handed back: an earlier one is still held", len(returned))
        return [m for m in msgs if m not in returned]

    async def _open(self, consumer: str, mine: list[Msg]) -> bool:
        first = min(m.metadata.sequence.stream for m in mine)
        delivered = sorted(m.metadata.sequence.consumer for m in mine)
        if self._next.get(consumer) == delivered[0] and _contiguous(delivered):
            self._next[consumer] = delivered[-1] + 1  # nobody else got one in between
            return True
        stream = mine[0].metadata.stream
        deadline = time.monotonic() + SUBMISSION_GATE_WAIT_S
        kept_alive = time.monotonic()
        while True:
            if await self._first_unacked(stream, consumer) >= first:
                self._next[consumer] = delivered[-1] + 1
                return True
            if time.monotonic() > deadline:
                self._next.pop(consumer, None)
                return False
            self.waits += 1
            await asyncio.sleep(SUBMISSION_GATE_POLL_S)
            if time.monotonic() - kept_alive > KEEP_ALIVE_S:
                kept_alive = time.monotonic()
                for msg in mine:
                    await _quietly(msg.in_progress())

    async def _first_unacked(self, stream: str, consumer: str) -> int:
        """The stream sequence of the consumer's first submission not acked yet: every earlier
        one is acked. (The ack floor alone does not say it: it stops below the first message
        still held, and sequences of other subjects lie between a filtered consumer's ones.)"""
        info = await self.nc.jetstream().consumer_info(stream, consumer)
        start = (info.ack_floor.stream_seq or 0) + 1
        found = await first_sequence_from(self.nc, stream, start, info.config.filter_subject)
        return found if found is not None else start


def _contiguous(sequences: list[int]) -> bool:
    return sequences[-1] - sequences[0] == len(sequences) - 1


async def _quietly(awaitable) -> None:
    try:
        await awaitable
    except Exception as exc:  # a lost ack only means a harmless redelivery
        log.debug("ack failed: %s", exc)
