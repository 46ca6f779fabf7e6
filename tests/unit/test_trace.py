"""Trace context: per-transfer traceparents survive every hop of a group commit, messages without
one decode and encode as before, and the traceparent header is set only where it is true."""

from __future__ import annotations

import msgspec

from eventsource.core import trace
from eventsource.core.events import encoder
from eventsource.core.messages import Confirm, Kind, Result, inbox_decoder
from eventsource.core.model import Outcome
from eventsource.core.workset import WorkSet

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def workset(token: str = "t1") -> WorkSet:
    return WorkSet("bank-a", 0, {}, frozenset(), now_ms=0, token=token)


def test_parse_accepts_w3c_and_refuses_garbage() -> None:
    assert trace.parse(PARENT) == (TRACE_ID, "00f067aa0ba902b7", "01")
    for bad in ("", "00-xyz", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", None, 7):
        assert trace.parse(bad) is None
    assert trace.parse(trace.new_traceparent()) is not None


def test_a_child_keeps_the_trace_and_changes_the_span() -> None:
    one, two = trace.child(PARENT, "a"), trace.child(PARENT, "b")
    assert trace.trace_id(one) == trace.trace_id(two) == TRACE_ID
    assert len({PARENT, one, two}) == 3


def test_an_item_without_trace_encodes_as_before() -> None:
    result = Result(id="x1", digest="d", outcome=Outcome.OK)
    assert b"trace" not in encoder.encode(result)
    old = (
        b'{"type":"confirm","sender":"bank-a","confirms":[{"id":"x1","digest":"d","outcome":"OK"}]}'
    )
    assert inbox_decoder.decode(old).confirms[0].trace is msgspec.UNSET


def test_send_gives_each_traced_transfer_a_child_span_and_one_item_a_header() -> None:
    ws = workset()
    ws.traces = {"x1": PARENT}
    ws.send("bank-b", Kind.CONFIRM, Confirm(id="x1", digest="d", outcome=Outcome.OK))
    (write,) = ws.writes()
    sent = inbox_decoder.decode(write.payload).confirms[0]
    assert trace.trace_id(sent.trace) == TRACE_ID and sent.trace != PARENT
    assert write.headers == {"traceparent": sent.trace}


def test_a_message_of_many_transfers_has_no_header_but_traced_items() -> None:
    ws = workset()
    ws.traces = {"x1": PARENT}
    for tid in ("x1", "x2"):
        ws.send("bank-b", Kind.CONFIRM, Confirm(id=tid, digest="d", outcome=Outcome.OK))
    (write,) = ws.writes()
    first, second = inbox_decoder.decode(write.payload).confirms
    assert write.headers is None
    assert trace.trace_id(first.trace) == TRACE_ID and second.trace is msgspec.UNSET


def test_traces_of_prefers_the_items_own_context_over_the_header() -> None:
    other = trace.new_traceparent()
    items = [Confirm(id="x1", digest="d", outcome=Outcome.OK, trace=other),
             Confirm(id="x2", digest="d", outcome=Outcome.OK)]  # fmt: skip
    assert trace.traces_of(items, PARENT) == {"x1": other, "x2": PARENT}
    assert trace.traces_of(items, "garbage") == {"x1": other}
