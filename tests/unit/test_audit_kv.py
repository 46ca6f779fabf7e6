"""I5 through KV judges an answer by its sequence: a replica that lags answers with an older
revision, which must never pass for the state, nor be reported before the leader confirms it;
a revision written after the audit's cut is not compared at all."""

from __future__ import annotations

import msgspec
import pytest
from nats.js.api import RawStreamMsg

from eventsource.core.compact_fold import CompactFold
from eventsource.core.events import account_event_decoder, encoder, transfer_event_decoder
from eventsource.core.subjects import account_key, outgoing_key
from eventsource.services.audit_kv import Verdict, verdict
from tests.unit.simulation import Network, request

ALICE, OUT = account_key("n", "alice"), outgoing_key("n", "t1")


@pytest.fixture
def folded(net: Network) -> tuple[CompactFold, dict[str, list[tuple[int, bytes]]], int]:
    """The audit's fold of one settled transfer, each event at its stream sequence; the
    revisions of every key (oldest first) and the cut (the last sequence folded)."""
    net.submit("n", request("t1", "30.00"))
    net.drain()
    fold, revisions, seq = CompactFold(), {}, 0
    for bank in net.banks.values():
        for key, payload in bank.events:
            seq += 1
            revisions.setdefault(key, []).append((seq, payload))
            if ".acct." in key:
                fold.fold_account(key, account_event_decoder.decode(payload), seq)
            else:
                fold.fold_transfer(key, transfer_event_decoder.decode(payload), seq)
    assert fold.problems == []
    return fold, revisions, seq


def answer(seq: int, payload: bytes) -> RawStreamMsg:
    return RawStreamMsg(seq=seq, data=payload)


@pytest.mark.parametrize("key", [ALICE, OUT])
def test_the_revision_the_fold_took_last_agrees(folded, key):
    fold, revisions, cut = folded
    assert verdict(fold, key, answer(*revisions[key][-1]), cut) is Verdict.AGREES


@pytest.mark.parametrize("key", [ALICE, OUT])
def test_an_older_revision_from_a_lagging_replica_never_passes(folded, key):
    fold, revisions, cut = folded
    assert len(revisions[key]) > 1
    assert verdict(fold, key, answer(*revisions[key][0]), cut) is Verdict.DIFFERS


@pytest.mark.parametrize("key", [ALICE, OUT])
def test_a_revision_written_after_the_cut_is_not_compared(folded, key):
    fold, revisions, cut = folded
    later = answer(cut + 1, revisions[key][0][1])
    assert verdict(fold, key, later, cut) is Verdict.MOVED


def test_no_revision_at_all_differs(folded):
    fold, _, cut = folded
    assert verdict(fold, ALICE, None, cut) is Verdict.DIFFERS


def test_an_account_revision_at_the_right_sequence_with_another_state_differs(folded):
    fold, revisions, cut = folded
    seq, payload = revisions[ALICE][-1]
    event = account_event_decoder.decode(payload)
    tampered = msgspec.structs.replace(
        event, state=msgspec.structs.replace(event.state, balance="1000000.00")
    )
    assert verdict(fold, ALICE, answer(seq, encoder.encode(tampered)), cut) is Verdict.DIFFERS
    assert verdict(fold, ALICE, answer(seq, b"not json"), cut) is Verdict.DIFFERS


def test_an_older_account_revision_with_the_same_state_still_differs(net):
    """A declined transfer leaves alice as she was once funded: only the sequence tells the
    replica's old revision from the latest one."""
    net.submit("n", request("t2", "5.00", creditor=("p", "nobody")))
    net.drain()
    fold, seq, alice = CompactFold(), 0, []
    for key, payload in net.banks["n"].events:
        seq += 1
        if ".acct." in key:
            alice += [(seq, payload)] if key == ALICE else []
            fold.fold_account(key, account_event_decoder.decode(payload), seq)
        else:
            fold.fold_transfer(key, transfer_event_decoder.decode(payload), seq)
    *older, (last_seq, last) = alice
    state = account_event_decoder.decode(last).state
    same = [r for r in older if account_event_decoder.decode(r[1]).state == state]
    assert same, "the scenario must revisit a state"
    assert verdict(fold, ALICE, answer(last_seq, last), seq) is Verdict.AGREES
    assert verdict(fold, ALICE, answer(*same[0]), seq) is Verdict.DIFFERS
