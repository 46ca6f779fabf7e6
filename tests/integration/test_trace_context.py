"""One transfer can be followed across participants: the traceparent a client puts on its
submission reaches the posting, the result and the confirm (same trace id, a new span per hop),
as a field of the transfer's item and, on a message of one transfer, as a NATS header. In both
transport modes: JetStream mode's outbox is read back from the ledger, core mode's messages are
overheard on the wire."""

from __future__ import annotations

import asyncio

from eventsource.adapters.stream_reader import read_messages
from eventsource.core import trace
from eventsource.core.messages import Confirms, Postings, Results, inbox_decoder, items_of
from eventsource.core.subjects import ledger_stream
from eventsource.services.client import submit
from tests.integration.live_bank import LiveBank, transfer

PHASES = (Postings, Results, Confirms)


def traced(msg, transfer_id: str) -> tuple[type, str | None, str | None] | None:
    """(message type, the item's trace, the header) when `msg` carries `transfer_id`."""
    message = inbox_decoder.decode(msg.data)
    for item in items_of(message):
        if trace.item_id(item) == transfer_id:
            header = (msg.headers or {}).get(trace.HEADER)
            return type(message), trace.item_trace(item), header
    return None


async def outbox_of(bank: LiveBank, transfer_id: str) -> list:
    found = []
    for k in range(bank.partitions):
        async for msg in read_messages(bank.nc, ledger_stream(k), [f"nb.{k}.to.>"]):
            if msg.subject.split(".")[4] != "submit" and (hit := traced(msg, transfer_id)):
                found.append(hit)
    return found


async def test_a_traceparent_follows_the_transfer_through_all_three_phases(
    bank: LiveBank,
) -> None:
    overheard: list = []

    async def overhear(msg) -> None:
        if hit := traced(msg, "trace-1"):
            overheard.append(hit)

    wire = await bank.nc.subscribe("nb.core.>", cb=overhear)
    bank.start_all()
    parent = trace.new_traceparent()
    await submit(
        bank.nc,
        bank.partitions,
        "alpha",
        [transfer("trace-1", "alpha/a1", "beta/b1", "3.00")],
        traceparent=parent,
    )
    final = await bank.wait("alpha", ["trace-1"])
    assert final["trace-1"].outcome.value == "OK"
    await bank.quiet()
    if bank.mode == "core":
        while {kind for kind, _, _ in overheard} != set(PHASES):  # the confirm may still fly
            await asyncio.sleep(0.1)
        seen = overheard
    else:
        seen = await outbox_of(bank, "trace-1")
    await wire.unsubscribe()

    assert {kind for kind, _, _ in seen} == set(PHASES), seen
    spans = set()
    for _kind, context, header in seen:
        assert trace.trace_id(context) == trace.trace_id(parent)
        assert header == context  # one transfer per message: the header says the same
        spans.add(context)
    assert parent not in spans and len(spans) >= len(PHASES)
