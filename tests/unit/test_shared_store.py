"""The shared store's one-step decision, and the fold that audits it, driven purely.

A tiny in-memory store stands for the stream: `commit` keeps every write, in order, with its
sequence, and refuses a batch whose expected sequences are stale, as JetStream does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsource.core.account import Account, EntryKind
from eventsource.core.errors import RejectionCause
from eventsource.core.events import (
    AccountChanged,
    AccountClosed,
    AccountOpened,
    AccountSnapshot,
    Entry,
    account_event_decoder,
    encoder,
)
from eventsource.core.model import AccountRef, Outcome, TransferRequest
from eventsource.core.money import format_amount
from eventsource.core.shared.decision import SharedGroup, decide_transfer, keys_of
from eventsource.core.shared.fold import SharedFold
from eventsource.core.shared.layout import (
    decode_shared_state,
    is_transfer_key,
    key_of_shared_subject,
    shared_subject,
    shared_transfer_decoder,
    transfer_key,
)
from eventsource.core.subjects import account_key
from eventsource.core.workset import Write


class Stale(Exception):
    pass


@dataclass
class FakeSharedLedger:
    """The shared stream: every write in order; the last per key with its sequence."""

    log: list[Write] = field(default_factory=list)
    last: dict[str, int] = field(default_factory=dict)
    registered: set[str] = field(default_factory=lambda: {"n", "p"})

    def commit(self, writes: list[Write]) -> None:
        guarded = set()
        for w in writes:
            if w.expected is not None and w.key not in guarded:
                guarded.add(w.key)
                if self.last.get(w.key, 0) != w.expected:
                    raise Stale(w.key)
        for w in writes:
            self.log.append(w)
            self.last[w.key] = len(self.log)

    def open(self, participant: str, account: str, currency: str = "EUR", minor: int = 0) -> None:
        key = account_key(participant, account)
        opened = Account(participant, account, currency)
        writes = [Write(shared_subject(key), _opened(opened), 0, key)]
        if minor:
            funded = opened.apply(EntryKind.FUNDED, minor)
            entry = Entry(EntryKind.FUNDED, f"fund-{key}", format_amount(minor, currency))
            event = AccountChanged(state=AccountSnapshot.of(funded), entries=[entry], at=0)
            writes.append(Write(shared_subject(key), encoder.encode(event), None, key))
        self.commit(writes)

    def state(self, key: str):
        seq = self.last.get(key, 0)
        if not seq:
            return None, 0
        return decode_shared_state(key, self.log[seq - 1].payload), seq

    def group(self, submitter: str, requests: list[TransferRequest]) -> SharedGroup:
        records, accounts = keys_of(submitter, requests)
        loaded = {key: self.state(key) for key in records | accounts}
        return SharedGroup(submitter, loaded, frozenset(self.registered), now_ms=1)

    def submit(self, submitter: str, *requests: TransferRequest) -> list:
        group = self.group(submitter, list(requests))
        decisions = [decide_transfer(group, r) for r in requests]
        writes = group.writes()
        if writes:
            self.commit(writes)
        return decisions

    def balance(self, participant: str, account: str) -> int:
        state, _ = self.state(account_key(participant, account))
        return state.balance

    def fold(self) -> SharedFold:
        fold = SharedFold()
        for w in self.log:
            key = key_of_shared_subject(w.subject)
            if is_transfer_key(key):
                fold.transfer_event(key, shared_transfer_decoder.decode(w.payload))
            else:
                fold.account_event(key, account_event_decoder.decode(w.payload))
        fold.check_postings()
        return fold


def _opened(account: Account) -> bytes:
    return encoder.encode(AccountOpened(state=AccountSnapshot.of(account), at=0))


def request(tid: str, amount: str = "10.00", *, to: str = "p/bob", currency: str = "EUR", **kw):
    participant, account = to.split("/")
    debtor = kw.pop("debtor", AccountRef("n", "alice"))
    return TransferRequest(
        id=tid,
        debtor=debtor,
        creditor=AccountRef(participant, account),
        amount=amount,
        currency=currency,
        **kw,
    )


@pytest.fixture
def store() -> FakeSharedLedger:
    """n/alice holds EUR 100.00, p/bob EUR 0, p/yuki is a JPY account."""
    s = FakeSharedLedger()
    s.open("n", "alice", minor=100_00)
    s.open("p", "bob")
    s.open("p", "yuki", "JPY")
    return s


def test_an_ok_transfer_debits_and_credits_in_one_batch_with_one_record(store):
    before = len(store.log)
    [decision] = store.submit("n", request("t1", "30.00"))
    assert decision.outcome is Outcome.OK
    assert (store.balance("n", "alice"), store.balance("p", "bob")) == (70_00, 30_00)
    batch = store.log[before:]
    assert [w.key for w in batch] == [transfer_key("n", "t1"), "n.acct.alice", "p.acct.bob"]
    assert batch[0].expected == 0  # the id must be new: a permanent idempotency key
    assert all(w.expected for w in batch[1:])  # each account guarded by what was read
    assert store.fold().problems == []


@pytest.mark.parametrize(
    ("req", "cause"),
    [
        (request("r1", "100.01"), RejectionCause.INSUFFICIENT_FUNDS),
        (request("r2", to="p/nobody"), RejectionCause.UNKNOWN_ACCOUNT),
        (request("r3", to="q/bob"), RejectionCause.UNKNOWN_PARTICIPANT),
        (request("r4", to="p/yuki"), RejectionCause.CURRENCY_MISMATCH),
        (request("r5", "10.001"), RejectionCause.INVALID_AMOUNT),
        (request("r6", "-1"), RejectionCause.INVALID_AMOUNT),
        (request("r7", currency="XXY"), RejectionCause.UNKNOWN_CURRENCY),
        (request("r8", to="n/alice"), RejectionCause.SAME_ACCOUNT),
        (request("r9", debtor=AccountRef("p", "bob")), RejectionCause.INVALID_TRANSFER),
        (request("r10", debtor=AccountRef("n", "ghost")), RejectionCause.UNKNOWN_ACCOUNT),
    ],
)
def test_a_rejected_transfer_moves_nothing_and_records_its_cause(store, req, cause):
    [decision] = store.submit("n", req)
    assert (decision.outcome, decision.cause) == (Outcome.REJECTED, cause)
    assert (store.balance("n", "alice"), store.balance("p", "bob")) == (100_00, 0)
    recorded, _ = store.state(transfer_key("n", req.id))
    assert recorded == decision
    assert store.fold().problems == []


def test_a_closed_creditor_account_is_refused_and_the_debtor_keeps_its_money(store):
    bob, seq = store.state("p.acct.bob")
    closed = AccountClosed(state=AccountSnapshot.of(replace(bob, closed=True)), at=0)
    store.commit([Write(shared_subject("p.acct.bob"), encoder.encode(closed), seq, "p.acct.bob")])
    [decision] = store.submit("n", request("c1"))
    assert decision.cause is RejectionCause.ACCOUNT_CLOSED
    assert store.balance("n", "alice") == 100_00
    assert store.fold().problems == []


def test_a_duplicate_is_answered_from_the_record_and_applied_once(store):
    [first] = store.submit("n", request("d1", "25.00"))
    size = len(store.log)
    [again] = store.submit("n", request("d1", "25.0"))  # same transfer, other spelling
    assert again == first
    assert len(store.log) == size  # nothing written
    assert store.balance("n", "alice") == 75_00
    twice = store.submit("n", request("d2", "5.00"), request("d2", "5.00"))
    assert twice[0] == twice[1] and twice[0].outcome is Outcome.OK
    assert store.balance("n", "alice") == 70_00
    assert store.fold().problems == []


def test_the_same_id_with_other_content_is_a_conflict_and_never_applied(store):
    store.submit("n", request("x1", "10.00"))
    group = store.group("n", [request("x1", "20.00")])
    assert decide_transfer(group, request("x1", "20.00")) is None
    assert [d.reason for d in group.dead_letters] == [RejectionCause.ID_CONFLICT]
    assert group.writes() == []


def test_a_stale_read_is_refused_as_a_whole_so_a_retry_decides_again(store):
    stale = store.group("n", [request("s1", "60.00")])
    store.submit("n", request("s0", "60.00"))  # another instance got there first
    decide_transfer(stale, request("s1", "60.00"))
    with pytest.raises(Stale):
        store.commit(stale.writes())
    [retried] = store.submit("n", request("s1", "60.00"))
    assert retried.cause is RejectionCause.INSUFFICIENT_FUNDS
    assert store.balance("n", "alice") == 40_00
    assert store.fold().problems == []


def test_the_fold_flags_a_transfer_applied_twice(store):
    store.submit("n", request("t1", "10.00"))
    store.log.extend(store.log[-3:])  # the same batch stored a second time
    problems = store.fold().problems
    assert any("recorded again (I3)" in p for p in problems)
    assert any("entries are" in p and "(I3)" in p for p in problems)


amounts = st.integers(min_value=1, max_value=6000).map(lambda m: f"{m // 100}.{m % 100:02d}")
moves = st.lists(
    st.tuples(st.sampled_from(["n", "p"]), amounts, st.integers(0, 12)), min_size=1, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(moves)
def test_any_interleaving_conserves_money_never_overdraws_and_applies_each_id_once(moves):
    store = FakeSharedLedger()
    store.open("n", "alice", minor=100_00)
    store.open("p", "bob", minor=50_00)
    for submitter, amount, number in moves:
        if submitter == "n":
            req = request(f"n{number}", amount)
        else:
            req = request(f"p{number}", amount, to="n/alice", debtor=AccountRef("p", "bob"))
        store.submit(submitter, req)
    fold = store.fold()
    assert fold.problems == []
    assert sum(a.balance for a in fold.accounts.values()) == fold.funded["EUR"] == 150_00
    assert all(a.balance >= 0 for a in fold.accounts.values())
    for key, (state, _) in ((k, store.state(k)) for k in store.last):
        assert state == (fold.decisions.get(key) or fold.accounts.get(key))  # I5
