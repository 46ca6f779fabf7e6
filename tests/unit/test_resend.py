"""Core mode's resend clock: what waits for an answer, and when it is resent."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventsource.core.events import TransferState
from eventsource.core.messages import Kind, Posting, Result
from eventsource.core.model import AccountRef, Outcome, Side, Transfer
from eventsource.core.protocol import Phase
from eventsource.core.resend import ResendPolicy, ResendSchedule, awaited, refused_posting

TRANSFER = Transfer(
    id="t1",
    debtor=AccountRef("alpha", "a1"),
    creditor=AccountRef("beta", "b1"),
    amount="1.00",
    currency="EUR",
)


def state(side: Side, phase: Phase, outcome: Outcome | None = None, cause=None) -> TransferState:
    return TransferState(
        transfer=TRANSFER, digest="d", side=side, phase=phase, outcome=outcome, cause=cause
    )


def test_a_reserved_submitter_record_waits_for_the_result_of_its_posting():
    peer, kind, item = awaited(state(Side.SUBMITTER, Phase.RESERVED))
    assert (peer, kind) == ("beta", Kind.POSTING)
    assert item == Posting(transfer=TRANSFER, digest="d")


def test_a_decided_receiver_record_waits_for_the_confirmation_of_its_result():
    peer, kind, item = awaited(state(Side.RECEIVER, Phase.DECIDED, Outcome.REJECTED, "X"))
    assert (peer, kind) == ("alpha", Kind.RESULT)
    assert item == Result(id="t1", digest="d", outcome=Outcome.REJECTED, cause="X")


@pytest.mark.parametrize(
    "final",
    [
        state(Side.SUBMITTER, Phase.SETTLED, Outcome.OK),
        state(Side.RECEIVER, Phase.CONFIRMED, Outcome.OK),
    ],
)
def test_final_records_wait_for_nothing(final):
    assert awaited(final) is None


def test_a_refused_posting_carries_the_submitters_cause():
    refused = state(Side.SUBMITTER, Phase.SETTLED, Outcome.REJECTED, "INSUFFICIENT_FUNDS")
    assert refused_posting(refused).refused == "INSUFFICIENT_FUNDS"


def schedule(**policy) -> ResendSchedule:
    return ResendSchedule(ResendPolicy(jitter=0.0, **policy), seed=1)


def test_nothing_is_due_before_the_first_delay_and_a_resend_moves_the_clock():
    s = schedule(first=2.0)
    s.expect("k", "beta", Kind.POSTING, "item", now=0.0)
    assert s.due(1.9) == []
    [entry] = s.due(2.0)
    assert entry.attempts == 1 and entry.due == 2.0 + 4.0
    assert s.due(5.9) == []  # no resend storm: the next one is 4 s later
    assert [e.key for e in s.due(6.0)] == ["k"]


def test_backoff_doubles_up_to_the_cap_and_never_gives_up():
    s = schedule(first=1.0, cap=5.0)
    s.expect("k", "beta", Kind.POSTING, "item", now=0.0)
    times, now = [], 0.0
    for _ in range(8):
        now = s.next_due()
        times.append(now)
        assert s.due(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_a_settled_key_is_never_resent_and_expect_keeps_an_existing_clock():
    s = schedule(first=1.0)
    s.expect("a", "beta", Kind.POSTING, "x", now=0.0)
    s.expect("b", "beta", Kind.POSTING, "y", now=0.0)
    s.expect("a", "beta", Kind.POSTING, "x", now=0.9)  # already waiting: same clock
    assert s.settle("b") and not s.settle("b")
    assert [e.key for e in s.due(1.0)] == ["a"]
    assert len(s) == 1 and "b" not in s


def test_due_respects_its_limit_and_leaves_the_rest_for_the_next_tick():
    s = schedule(first=1.0)
    for i in range(10):
        s.expect(f"k{i}", "beta", Kind.POSTING, i, now=0.0)
    assert len(s.due(1.0, limit=4)) == 4
    assert len(s.due(1.0)) == 6


@given(st.integers(0, 20), st.floats(0.0, 0.5))
def test_jitter_stays_within_its_bounds(attempts, jitter):
    policy = ResendPolicy(first=2.0, cap=30.0, jitter=jitter)
    base = min(30.0, 2.0 * 2.0**attempts)
    delay = policy.delay(attempts, random.Random(attempts))
    assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9
