"""A pull consumer's batches, fetched without nats-py's cost per message. nats-py 2.16's
`fetch(n)` waits for each message of a batch with `next_msg(timeout)`: a task, a uuid and an
`asyncio.wait_for` per message. Here one pull request asks for the batch and a callback collects
its messages; the fetch waits once, for the batch's end, under one timeout.

The request is nats-py's first one (`_fetch_n`): `batch`, `expires` and `no_wait`. nats-server
(2.10 and later) waits up to `expires` for the first message, delivers what is pending, and
ends the request with a status (404, 408; 409 if it cut it short: a leadership change, the
consumer deleted). Messages that arrive after a fetch gave up (a late reply to an earlier
request) are kept, in order, for the next fetch; the projector checks the consumer sequences
of each batch anyway (`in_sequence`), so it never applies past a hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import APIError

from eventsource.adapters.jetstream import api_subject

_STATUS = "Status"  # the header nats-py puts a status line's code in
_HEARTBEAT = "100"
_ENDS_REQUEST = frozenset({"404", "408", "409"})  # no messages, expired, cut short
REPLY_SLACK_S = 0.5  # how long after the request's expiry its end status may take to arrive


def delivery_sequences(reply: str) -> tuple[int, int]:
    """(stream sequence, consumer sequence) of a JetStream delivery, from its ack subject:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`, or the form with a
    domain and an account hash after `$JS.ACK` (11 or 12 tokens). Raises ValueError if the
    reply is not one."""
    tokens = reply.split(".")
    if tokens[:2] != ["$JS", "ACK"] or len(tokens) not in (9, 11, 12):
        raise ValueError(f"{reply!r} is not a JetStream ack subject")
    first = 5 if len(tokens) == 9 else 7
    return int(tokens[first]), int(tokens[first + 1])


class PullBatches:
    """The batches of one durable pull consumer, through one inbox subscription."""

    def __init__(self, nc: Client, stream: str, consumer: str) -> None:
        self.nc = nc
        self.subject = api_subject(nc, f"CONSUMER.MSG.NEXT.{stream}.{consumer}")  # its prefix
        self._inbox = nc.new_inbox()
        self._sub = None
        self._received: list[Msg] = []  # delivered, not yet handed out, in delivery order
        self._wanted = 0
        self._ended = asyncio.Event()
        self._error: Exception | None = None

    async def subscribe(self) -> PullBatches:
        self._sub = await self.nc.subscribe(self._inbox, cb=self._on_message)
        return self

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to `batch` messages: what the server delivers before it ends the request (at the
        stream's end, after waiting up to `timeout` for a first message); [] if none came.
        Raises APIError for a status that is not one of a request's ends."""
        if len(self._received) < batch and self._error is None:
            self._wanted = batch
            self._ended.clear()
            request = {"batch": batch - len(self._received), "expires": int(timeout * 1e9)}
            request["no_wait"] = True
            await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self._inbox)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout + REPLY_SLACK_S):
                    await self._ended.wait()
        error, self._error = self._error, None
        if error is not None:
            raise error
        msgs, self._received = self._received[:batch], self._received[batch:]
        return msgs

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get(_STATUS) if msg.headers and not msg.data else None
        if status is None:
            self._received.append(msg)
            if len(self._received) >= self._wanted:
                self._ended.set()
        elif status in _ENDS_REQUEST:
            self._ended.set()
        elif status != _HEARTBEAT:
            try:
                APIError.from_msg(msg)  # raises the status's error
            except APIError as exc:
                self._error = exc
            self._ended.set()
