"""When the submitter gives up: the limits a transfer carries, the give-up time they give in each
transport mode, the clock that hands them out, and what core mode's resend clock waits for once
a transfer is cancelled."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.cli.options import parse_duration
from eventsource.core.deadlines import DeadlineClock, give_up_at
from eventsource.core.errors import DomainError, RejectionCause, UsageError
from eventsource.core.events import TransferState
from eventsource.core.messages import Confirm, Kind, Posting, Result
from eventsource.core.model import (
    MAX_ATTEMPTS,
    AccountRef,
    Outcome,
    Side,
    Transfer,
    TransferRequest,
    validate_transfer,
)
from eventsource.core.protocol import Phase
from eventsource.core.resend import ResendPolicy, ResendSchedule, answers, awaited
from eventsource.core.saga import GiveUpReason

POLICY = ResendPolicy(first=2.0, factor=2.0, cap=30.0)
PLAIN = Transfer(
    id="t1",
    debtor=AccountRef("n", "alice"),
    creditor=AccountRef("p", "bob"),
    amount="1.00",
    currency="EUR",
)


def reserved(**limits) -> TransferState:
    transfer = msgspec.structs.replace(PLAIN, **limits)
    return TransferState(
        transfer=transfer, digest=transfer.digest, side=Side.SUBMITTER, phase=Phase.RESERVED
    )


def request(**limits) -> TransferRequest:
    return TransferRequest(
        id="t1",
        debtor=AccountRef("n", "alice"),
        creditor=AccountRef("p", "bob"),
        amount="1.00",
        currency="EUR",
        **limits,
    )


def test_a_transfer_without_limits_is_encoded_and_digested_as_before():
    assert b"deadline_ms" not in msgspec.json.encode(PLAIN)
    assert not PLAIN.limited
    old = b'{"id":"t1","debtor":{"participant":"n","account":"alice"},"creditor":'
    old += b'{"participant":"p","account":"bob"},"amount":"1.00","currency":"EUR"}'
    assert msgspec.json.decode(old, type=Transfer) == PLAIN


def test_the_limits_are_part_of_the_transfer_and_of_its_digest():
    limited = validate_transfer(request(deadline_ms=30_000, max_attempts=3), "n")
    assert (limited.deadline_ms, limited.max_attempts) == (30_000, 3)
    assert limited.limited and limited.digest != validate_transfer(request(), "n").digest


@pytest.mark.parametrize(
    "limits", [{"deadline_ms": 0}, {"deadline_ms": 10**12}, {"max_attempts": MAX_ATTEMPTS + 1}]
)
def test_a_limit_out_of_range_is_rejected_with_a_cause(limits):
    with pytest.raises(DomainError) as refused:
        validate_transfer(request(**limits), "n")
    assert refused.value.cause is RejectionCause.INVALID_TRANSFER


def test_the_deadline_counts_from_the_admission():
    assert give_up_at(reserved(deadline_ms=1500), 10_000, POLICY, counts_sends=False) == (
        11_500,
        GiveUpReason.DEADLINE_PASSED,
    )
    assert give_up_at(reserved(), 10_000, POLICY, counts_sends=False) is None


def test_jetstream_mode_times_the_attempts_as_core_mode_would_send_them():
    # sends at 0, 2, 6 s: with 3 attempts n gives up when the fourth would be due, at 14 s
    at = give_up_at(reserved(max_attempts=3), 0, POLICY, counts_sends=False)
    assert at == (14_000, GiveUpReason.ATTEMPTS_EXHAUSTED)
    both = give_up_at(reserved(max_attempts=3, deadline_ms=5000), 0, POLICY, counts_sends=False)
    assert both == (5000, GiveUpReason.DEADLINE_PASSED)


def test_core_mode_counts_the_attempts_on_its_replay_clock_not_here():
    assert give_up_at(reserved(max_attempts=3), 0, POLICY, counts_sends=True) is None


def test_only_a_reserved_submitter_record_is_ever_given_up():
    settled = msgspec.structs.replace(
        reserved(deadline_ms=1), phase=Phase.SETTLED, outcome=Outcome.OK
    )
    assert give_up_at(settled, 0, POLICY, counts_sends=False) is None


@pytest.mark.parametrize("sends", [1, 2, 3, 5, 8])
def test_sends_within_inverts_the_window(sends):
    assert POLICY.sends_within(POLICY.window(sends) - 0.01) == sends
    assert POLICY.sends_within(POLICY.window(sends)) == sends + 1


def test_the_clock_hands_out_what_is_due_until_it_is_forgotten():
    clock = DeadlineClock()
    clock.watch("n.out.a", 100, GiveUpReason.DEADLINE_PASSED)
    clock.watch("n.out.b", 3000, GiveUpReason.ATTEMPTS_EXHAUSTED)
    assert clock.due(99) == []
    assert [d.key for d in clock.due(150)] == ["n.out.a"]
    assert clock.due(150) == [], "not again at once"
    assert [d.key for d in clock.due(1150)] == ["n.out.a"], "a failed give-up is retried"
    clock.forget("n.out.a")
    assert [(d.key, d.reason) for d in clock.due(5000)] == [
        ("n.out.b", GiveUpReason.ATTEMPTS_EXHAUSTED)
    ]
    assert len(clock) == 1 and "n.out.b" in clock


def test_a_cancelled_record_waits_for_the_acknowledgement_of_its_cancel():
    cancelled = msgspec.structs.replace(
        reserved(deadline_ms=1), phase=Phase.SETTLED, outcome=Outcome.CANCELLED
    )
    peer, kind, item = awaited(cancelled)
    assert (peer, kind) == ("p", Kind.CONFIRM)
    assert isinstance(item, Confirm) and item.outcome is Outcome.CANCELLED and item.transfer
    ok = Result(id="t1", digest=cancelled.digest, outcome=Outcome.OK)
    ack = Result(id="t1", digest=cancelled.digest, outcome=Outcome.CANCELLED)
    assert not answers(cancelled, ok), "a late OK is answered with the CANCEL: still waiting"
    assert answers(cancelled, ack)


def test_the_give_up_replaces_the_posting_on_the_replay_clock_by_the_cancel():
    schedule = ResendSchedule(POLICY, seed=1)
    state = reserved(deadline_ms=1)
    schedule.expect("n.out.t1", "p", Kind.POSTING, Posting(transfer=state.transfer, digest="d"), 0)
    schedule.expect("n.out.t1", "p", Kind.POSTING, Posting(transfer=state.transfer, digest="d"), 5)
    (entry,) = schedule.due(3.0)
    assert entry.kind is Kind.POSTING and entry.attempts == 1, "same kind: its clock kept"
    cancelled = msgspec.structs.replace(state, phase=Phase.SETTLED, outcome=Outcome.CANCELLED)
    schedule.expect("n.out.t1", *awaited(cancelled), 3.0)
    (entry,) = schedule.due(100.0)
    assert (entry.kind, entry.attempts) == (Kind.CONFIRM, 1)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("500ms", 500), ("2m", 120_000), ("1.5", 1500), ("1h", 3_600_000)],
)
def test_a_deadline_is_a_duration(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["soon", "-1s", "0s", "30d", "9999h"])
def test_a_bad_deadline_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_duration(text)
