"""Core-NATS mode's receiving side: the queue-group subscription and a bounded queue between it
and the engine. A flood (junk, or more than the instance can decide) is shed at the door, not
held in memory: a shed protocol message is one the sender's resend clock sends again."""

from __future__ import annotations

import asyncio
import collections

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.subscriptions import unsubscribe_quietly
from eventsource.core.limits import (
    CORE_INBOX_BYTES_MAX,
    CORE_INBOX_MESSAGES_MAX,
    FETCH_WAIT_S,
)
from eventsource.core.subjects import core_filter, core_queue

NATS_PENDING_FACTOR = 2  # nats-py's pending bounds, as a multiple of this inbox's


class CoreInbox:
    def __init__(
        self,
        nc: Client,
        participant: str,
        *,
        messages_max: int = CORE_INBOX_MESSAGES_MAX,
        bytes_max: int = CORE_INBOX_BYTES_MAX,
    ) -> None:
        self.nc = nc
        self.participant = participant
        self.messages_max = messages_max
        self.bytes_max = bytes_max
        self.received = 0  # messages the subscription delivered here
        self.shed = 0  # of them, dropped because the queue was full
        self.held_bytes = 0
        self._queue: collections.deque[Msg] = collections.deque()
        self._arrived = asyncio.Event()
        self._sub = None
        self.listening = asyncio.Event()  # set once the subscription is in place

    async def open(self) -> None:
        p = self.participant
        # nats-py's own pending queue only holds what arrived while the event loop was busy
        # elsewhere (the callback moves each message here at once); its bounds, above ours, are
        # the backstop: past them nats-py drops and reports a slow consumer.
        self._sub = await self.nc.subscribe(
            core_filter(p),
            queue=core_queue(p),
            cb=self._take,
            pending_msgs_limit=NATS_PENDING_FACTOR * self.messages_max,
            pending_bytes_limit=NATS_PENDING_FACTOR * self.bytes_max,
        )
        await self.nc.flush()
        self.listening.set()

    async def close(self) -> None:
        await unsubscribe_quietly(self._sub)

    async def _take(self, msg: Msg) -> None:
        self.received += 1
        size = len(msg.data) + len(msg.subject)
        if len(self._queue) >= self.messages_max or self.held_bytes + size > self.bytes_max:
            self.shed += 1
            return
        self._queue.append(msg)
        self.held_bytes += size
        self._arrived.set()

    async def next_batch(self, batch: int) -> list[Msg]:
        """Up to `batch` queued messages; empty when none arrived within FETCH_WAIT_S."""
        if not self._queue:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), FETCH_WAIT_S)
            except TimeoutError:
                return []
        msgs = []
        while self._queue and len(msgs) < batch:
            msg = self._queue.popleft()
            self.held_bytes -= len(msg.data) + len(msg.subject)
            msgs.append(msg)
        return msgs
