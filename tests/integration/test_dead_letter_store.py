"""Storing a dead letter on a real nats-server: idempotent when instances race on the same
poison message, and bounded when the dead-letter stream is missing (issue 11, item 6)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from eventsource.adapters.cluster import ClusterInfo
from eventsource.adapters.dead_letters import dead_letter
from eventsource.adapters.jetstream import connect
from eventsource.adapters.provision import apply_topology
from eventsource.adapters.retry import Backoff, is_transient, transient_retry
from eventsource.adapters.topology import Topology
from eventsource.core.errors import DeadLetterFailed
from eventsource.core.subjects import DEAD_LETTER_STREAM, ledger_stream, submission_subject

POISONS = 20
# Bounded: 4 attempts that each fail at once (no responders; about 0.7 s in all), with room for
# a loaded machine. The reason in its message says it was not a timeout.
MISSING_STREAM_FAILS_WITHIN_S = 15.0
FETCH_WAIT_S = 5.0
REDELIVER_AFTER_S = 2.0


@contextlib.asynccontextmanager
async def connections(info: ClusterInfo, count: int) -> AsyncIterator[list[Client]]:
    """`count` separate connections, like as many service instances."""
    clients = [await connect(info.url, name=f"instance-{i}") for i in range(count)]
    try:
        yield clients
    finally:
        for nc in clients:
            await nc.close()


async def delivered_poisons(nc: Client, count: int) -> list[Msg]:
    """`count` junk messages published onto an inbox, as a consumer delivers them (with the
    JetStream metadata a dead letter names as its source)."""
    js = nc.jetstream()
    for i in range(count):
        await js.publish(submission_subject(0, "bank-a", f"t{i}"), f"junk {i}".encode())
    # A short ack wait: a message handed out in a fetch that failed comes back soon.
    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=REDELIVER_AFTER_S)
    # Durable, so that creating it again after an answer that did not come is the same consumer.
    sub = await transient_retry(
        lambda: js.pull_subscribe(
            "nb.0.to.bank-a.>", durable="poisons", stream=ledger_stream(0), config=config
        ),
        what="the poison messages' consumer",
    )
    # An R3 consumer answers 503 until its leader is elected: fetch again, keeping each
    # stream sequence once, until every message has come.
    by_seq: dict[int, Msg] = {}
    backoff = Backoff("fetching the poison messages")
    while len(by_seq) < count:
        try:
            msgs = await sub.fetch(count - len(by_seq), timeout=FETCH_WAIT_S)
        except Exception as error:
            if not is_transient(error):
                raise
            await backoff.pause(error)
            continue
        before = len(by_seq)
        by_seq.update((msg.metadata.sequence.stream, msg) for msg in msgs)
        if len(by_seq) > before:
            backoff.restart()  # progress: the retry bound counts from here
    return [by_seq[seq] for seq in sorted(by_seq)]


@pytest.mark.cluster3
async def test_two_instances_dead_lettering_the_same_messages_at_once_store_each_once(
    nats3: ClusterInfo,
):
    # R3: the server answers 10158 while the first copy is still being replicated.
    async with connections(nats3, 2) as (first, second):
        await apply_topology(first, Topology(replicas=3, participants=["bank-a"]))
        poisons = await delivered_poisons(first, POISONS)
        await asyncio.gather(
            *(
                dead_letter(nc, "bank-a", msg, "UNDECODABLE", "not JSON")
                for msg in poisons
                for nc in (first, second)
            )
        )
        # A redelivery dead-lettered again later is the same letter too.
        await dead_letter(second, "bank-a", poisons[0], "UNDECODABLE", "not JSON")
        info = await transient_retry(
            lambda: first.jetstream().stream_info(DEAD_LETTER_STREAM), what="the dead letters"
        )
        state = info.state
    assert state.messages == POISONS


async def test_a_missing_dead_letter_stream_fails_quickly_with_the_bounded_error(
    nats1: ClusterInfo,
):
    async with connections(nats1, 1) as (nc,):
        await apply_topology(nc, Topology(replicas=1, participants=["bank-a"]))
        (poison,) = await delivered_poisons(nc, 1)
        await nc.jetstream().delete_stream(DEAD_LETTER_STREAM)
        started = time.monotonic()
        with pytest.raises(DeadLetterFailed) as failed:
            await dead_letter(nc, "bank-a", poison, "UNDECODABLE", "not JSON")
        elapsed_s = time.monotonic() - started
    assert elapsed_s < MISSING_STREAM_FAILS_WITHIN_S
    assert failed.value.reason == "UNDECODABLE"
    assert failed.value.source == f"{ledger_stream(0)}:1"
    assert "DEADLETTER missing" in str(failed.value) and "\n" not in str(failed.value)
