"""Core mode's two bounds, kept apart (issue 13): the window counts only the bank's own
transfers waiting for an answer, and a peer may leave only so many of its transfers waiting
here for its confirmation; past that its new postings are shed, never decided."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from eventsource.core.messages import Confirm, Confirms, Kind, Posting, Postings
from eventsource.core.model import AccountRef, Outcome, Transfer
from eventsource.core.resend import ResendPolicy, ResendSchedule, within_bound


def posting(tid: str, sender: str = "gamma") -> Posting:
    transfer = Transfer(
        id=tid,
        debtor=AccountRef(sender, "c1"),
        creditor=AccountRef("alpha", "a1"),
        amount="0.01",
        currency="EUR",
    )
    return Posting(transfer=transfer, digest="d")


def postings(sender: str, *ids: str) -> Postings:
    return Postings(sender=sender, postings=[posting(i, sender) for i in ids])


def waiting(counts: dict[str, int]) -> Callable[[str], int]:
    return lambda peer: counts.get(peer, 0)


def schedule() -> ResendSchedule:
    return ResendSchedule(ResendPolicy(jitter=0.0), seed=1)


def test_the_schedule_counts_own_transfers_apart_from_each_peers_unconfirmed_records():
    s = schedule()
    s.expect("alpha.out.t1", "beta", Kind.POSTING, "posting", now=0.0)
    s.expect("alpha.out.t2", "beta", Kind.CONFIRM, "cancel", now=0.0)
    s.expect("alpha.in.gamma.x1", "gamma", Kind.RESULT, "result", now=0.0)
    s.expect("alpha.in.gamma.x2", "gamma", Kind.RESULT, "result", now=0.0)
    s.expect("alpha.in.beta.y1", "beta", Kind.RESULT, "result", now=0.0)
    assert (s.outgoing(), s.unconfirmed_from("gamma"), s.unconfirmed_from("beta")) == (2, 2, 1)
    assert len(s) == 5


def test_settling_and_giving_up_keep_the_counts_exact():
    s = schedule()
    s.expect("alpha.out.t1", "beta", Kind.POSTING, "posting", now=0.0)
    s.expect("alpha.out.t1", "beta", Kind.CONFIRM, "cancel", now=1.0)  # given up: the CANCEL
    s.expect("alpha.in.gamma.x1", "gamma", Kind.RESULT, "result", now=0.0)
    s.expect("alpha.in.gamma.x1", "gamma", Kind.RESULT, "result", now=2.0)  # already waited on
    assert (s.outgoing(), s.unconfirmed_from("gamma")) == (1, 1)
    assert s.settle("alpha.in.gamma.x1") and not s.settle("alpha.in.gamma.x1")
    assert s.settle("alpha.out.t1")
    assert (s.outgoing(), s.unconfirmed_from("gamma"), len(s)) == (0, 0, 0)


def test_a_peer_that_never_confirms_fills_only_its_own_bound_and_not_the_window():
    s = schedule()
    for i in range(50):
        s.expect(f"alpha.in.gamma.x{i}", "gamma", Kind.RESULT, "result", now=0.0)
    assert s.outgoing() == 0  # what the window counts: the bank still admits its clients
    assert s.unconfirmed_from("gamma") == 50 and s.unconfirmed_from("beta") == 0


def test_postings_within_the_room_pass_whole():
    received = [("m1", postings("gamma", "x1", "x2"))]
    kept, shed = within_bound(received, waiting({"gamma": 3}), per_peer=5)
    assert kept == received and shed.total() == 0


def test_a_sender_at_its_bound_has_its_postings_shed_and_the_others_pass():
    confirms = Confirms(sender="gamma", confirms=[Confirm(id="t9", digest="d", outcome=Outcome.OK)])
    received = [
        ("m1", postings("gamma", "x1", "x2")),
        ("m2", postings("beta", "y1")),
        ("m3", confirms),  # a confirm frees room: never shed
    ]
    kept, shed = within_bound(received, waiting({"gamma": 5}), per_peer=5)
    assert kept == received[1:]
    assert dict(shed) == {"gamma": 2}


def test_a_message_across_the_bound_is_cut_in_order_and_later_ones_count_the_room_taken():
    received = [
        ("m1", postings("gamma", "x1", "x2", "x3")),
        ("m2", postings("gamma", "x4")),
    ]
    kept, shed = within_bound(received, waiting({"gamma": 3}), per_peer=5)
    assert kept == [("m1", postings("gamma", "x1", "x2"))]
    assert dict(shed) == {"gamma": 2}


@given(
    st.lists(st.tuples(st.sampled_from(["beta", "gamma"]), st.integers(1, 7)), max_size=12),
    st.integers(0, 10),
    st.integers(1, 10),
)
def test_no_sender_ever_passes_its_bound_and_nothing_is_lost_from_the_count(
    messages, already, per_peer
):
    received = [
        (n, postings(sender, *(f"{n}-{i}" for i in range(size))))
        for n, (sender, size) in enumerate(messages)
    ]
    kept, shed = within_bound(received, waiting({"gamma": already}), per_peer)
    for sender, before in (("gamma", already), ("beta", 0)):
        passed = sum(len(m.postings) for _, m in kept if m.sender == sender)
        sent = sum(size for s, size in messages if s == sender)
        assert passed == min(sent, max(0, per_peer - before))
        assert passed + shed[sender] == sent
