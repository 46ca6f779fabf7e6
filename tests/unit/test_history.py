"""Where a transfer id belongs in time (core/history.py): the rule that lets the live ledger
forget old final transfers while an id stays a permanent idempotency key."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ulid import ULID

from eventsource.core.archive_format import TIME_MS_MAX
from eventsource.core.dispatch import apply_message
from eventsource.core.errors import DeadLetterReason, RejectionCause
from eventsource.core.events import TransferState
from eventsource.core.history import (
    History,
    IdPlace,
    archivable_before_ms,
    id_time_ms,
    place_id,
)
from eventsource.core.messages import SubmitTransfers
from eventsource.core.model import Outcome, Side, validate_transfer
from eventsource.core.protocol import Phase
from eventsource.core.subjects import outgoing_key
from eventsource.core.workset import WorkSet
from tests.unit.simulation import request

DAY_MS = 86_400_000
WEEK = History(horizon_ms=7 * DAY_MS, skew_ms=300_000)


@given(st.integers(min_value=0, max_value=TIME_MS_MAX))
def test_a_ulid_carries_its_millisecond(ms):
    """Up to the year 9999 (an hour of the archive's id directory); later is no time."""
    ulid = str(ULID.from_timestamp(ms / 1000))
    assert id_time_ms(ulid) == ULID.from_str(ulid).milliseconds
    assert id_time_ms(ulid.lower()) == id_time_ms(ulid)


def test_a_uuid7_carries_its_time_and_other_ids_carry_none():
    v7 = "0190f5d4-3b2a-7c3e-9a1b-2c3d4e5f6a7b"
    assert id_time_ms(v7) == 0x0190F5D43B2A
    assert id_time_ms(str(uuid.uuid4())) is None
    for untimed in ("t1", "contested-3", "0" * 25, "I" * 26, "8" + "0" * 25, "U" * 26):
        assert id_time_ms(untimed) is None, untimed


def test_keeping_everything_places_every_id_live():
    assert place_id("t1", 0, History()) is IdPlace.LIVE


def test_an_id_is_placed_by_its_time_against_the_ack():
    acked = 100 * DAY_MS
    at = lambda ms: str(ULID.from_timestamp(ms / 1000))  # noqa: E731
    assert place_id(at(acked), acked, WEEK) is IdPlace.LIVE
    assert place_id(at(acked + 299_000), acked, WEEK) is IdPlace.LIVE  # within the skew
    assert place_id(at(acked + 301_000), acked, WEEK) is IdPlace.FUTURE
    assert place_id(at(acked - 7 * DAY_MS + 301_000), acked, WEEK) is IdPlace.LIVE
    assert place_id(at(acked - 7 * DAY_MS + 299_000), acked, WEEK) is IdPlace.OLD
    assert place_id("t1", acked, WEEK) is IdPlace.UNTIMED


@given(
    id_ms=st.integers(min_value=10 * DAY_MS, max_value=20 * DAY_MS),
    lag_ms=st.integers(min_value=0, max_value=3 * DAY_MS),  # admission after the ACK
    later_ms=st.integers(min_value=0, max_value=30 * DAY_MS),  # a later submission's ACK
)
def test_a_record_archived_by_the_rule_is_never_one_a_later_live_id_needs(id_ms, lag_ms, later_ms):
    """T's record is admitted at or after its ACK, and its latest event comes later still; it is
    archived only once that event is older than now - horizon - skew. An id placed LIVE at any
    later moment is younger than that, so the live ledger still answers for it."""
    acked = id_ms + lag_ms // 2  # T admitted: T's time is at most skew after the ACK...
    if place_id(str(ULID.from_timestamp(id_ms / 1000)), acked, WEEK) is not IdPlace.LIVE:
        return
    latest_event = acked + lag_ms  # ...and its record's latest event comes after that
    now = acked + later_ms
    cut = archivable_before_ms(now, WEEK)
    archived = latest_event < cut
    again = place_id(str(ULID.from_timestamp(id_ms / 1000)), now, WEEK)
    assert not (archived and again is IdPlace.LIVE)


# --- Admission with a bounded history (core/steps.py admit_transfer) -------------------------

NOW_MS = 200 * DAY_MS


def ulid_at(ms: int) -> str:
    return str(ULID.from_timestamp(ms / 1000))


def admit(net, transfer_id: str, *, archived=None, amount: str = "10.00"):
    """n decides one submission ACKed at NOW_MS, alone, with a week's horizon. `archived`: the
    final record the archive returned for the id (the decider loads it like a live one)."""
    bank = net.bank("n")
    loaded = dict(bank.states)
    if archived is not None:
        loaded[outgoing_key("n", transfer_id)] = (archived, 0)
    ws = WorkSet("n", bank.partition, loaded, net.known, NOW_MS, "x")
    ws.history, ws.acked_ms = WEEK, NOW_MS
    apply_message(ws, SubmitTransfers(transfers=[request(transfer_id, amount)]))
    return ws


def recorded(ws, transfer_id: str):
    return ws.changed_states.get(outgoing_key("n", transfer_id))


def test_a_recent_time_ordered_id_is_admitted_as_always(net):
    tid = ulid_at(NOW_MS - DAY_MS)
    state = recorded(admit(net, tid), tid)
    assert state.phase is Phase.RESERVED and state.outcome is None


def test_an_old_id_the_archive_does_not_know_is_refused_id_expired(net):
    tid = ulid_at(NOW_MS - 30 * DAY_MS)
    ws = admit(net, tid)  # the decider looked in the archive: nothing
    state = recorded(ws, tid)
    assert state.outcome is Outcome.REJECTED and state.cause is RejectionCause.ID_EXPIRED
    assert net.bank("n").account("alice").pending_debits == 0  # nothing was reserved


def test_an_old_id_the_archive_holds_is_a_duplicate_or_a_conflict_never_new(net):
    tid = ulid_at(NOW_MS - 30 * DAY_MS)
    transfer = validate_transfer(request(tid), "n")
    final = TransferState(
        transfer=transfer,
        digest=transfer.digest,
        side=Side.SUBMITTER,
        phase=Phase.SETTLED,
        outcome=Outcome.OK,
    )
    duplicate = admit(net, tid, archived=final)
    assert duplicate.writes() == [] and duplicate.dead_letters == []
    conflict = admit(net, tid, archived=final, amount="99.00")
    assert conflict.writes() == []
    assert [d.reason for d in conflict.dead_letters] == [DeadLetterReason.ID_CONFLICT]


def test_an_old_id_still_live_is_answered_from_its_live_record(net):
    tid = ulid_at(NOW_MS - 30 * DAY_MS)
    net.submit("n", request(tid))  # admitted long ago, not archived yet
    net.deliver_next()
    ws = admit(net, tid)  # no archive lookup needed: the live record answers
    assert ws.writes() == [] and ws.dead_letters == []


@pytest.mark.parametrize(
    "tid", [pytest.param(ulid_at(NOW_MS + DAY_MS), id="future"), pytest.param("t1", id="untimed")]
)
def test_an_id_that_cannot_be_placed_in_time_is_dead_lettered_not_recorded(net, tid):
    ws = admit(net, tid)
    assert ws.writes() == []
    assert [d.reason for d in ws.dead_letters] == [DeadLetterReason.PROTOCOL_VIOLATION]
