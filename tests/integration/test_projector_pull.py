"""The projector's own pull fetch (projections/pull.py) against a real nats-server: a batch is
what the consumer delivers in order, up to the size asked, the stream's end ends it, and a
request nobody answers is an error, not an empty batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import APIError

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.jetstream import connect
from projections.pull import PullBatches, delivery_sequences

STREAM = "PULL_TEST"
DURABLE = "reader"
MESSAGES = 25


@pytest.fixture
async def nc(nats1: ClusterInfo) -> AsyncIterator[Client]:
    """A stream of MESSAGES messages and a durable pull consumer on it, as the projector makes."""
    client = await connect(nats1.url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=["pull.>"]))
    for n in range(1, MESSAGES + 1):
        await js.publish(f"pull.{n}", str(n).encode())
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.ALL))
    yield client
    await client.close()


async def test_batches_come_in_order_up_to_the_size_asked(nc: Client) -> None:
    batches = await PullBatches(nc, STREAM, DURABLE).subscribe()
    first = await batches.fetch(10, timeout=5.0)
    rest = await batches.fetch(100, timeout=5.0)  # the stream's end ends it: 15, not 100
    sequences = [delivery_sequences(m.reply) for m in first + rest]
    assert sequences == [(n, n) for n in range(1, MESSAGES + 1)]
    assert [m.data for m in first + rest] == [str(n).encode() for n in range(1, MESSAGES + 1)]
    await rest[-1].ack()  # AckPolicy.ALL: the whole stream
    assert await batches.fetch(10, timeout=0.2) == []
    info = await nc.jetstream().consumer_info(STREAM, DURABLE)
    assert (info.num_ack_pending, info.num_pending) == (0, 0)
    await batches.unsubscribe()


async def test_a_fetch_at_the_stream_s_end_gets_the_next_message(nc: Client) -> None:
    batches = await PullBatches(nc, STREAM, DURABLE).subscribe()
    assert len(await batches.fetch(MESSAGES, timeout=5.0)) == MESSAGES
    waiting = asyncio.create_task(batches.fetch(10, timeout=5.0))  # the server holds it
    await nc.jetstream().publish("pull.late", b"late")
    (late,) = await waiting
    assert (late.data, delivery_sequences(late.reply)) == (b"late", (MESSAGES + 1, MESSAGES + 1))
    await batches.unsubscribe()


async def test_a_consumer_that_is_not_there_is_an_error(nc: Client) -> None:
    batches = await PullBatches(nc, STREAM, "nobody").subscribe()
    with pytest.raises(APIError):
        await batches.fetch(10, timeout=2.0)
    await batches.unsubscribe()
