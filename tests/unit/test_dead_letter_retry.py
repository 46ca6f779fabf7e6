"""Which dead letters `dead-letters retry` republishes, and as what; which it refuses, and why."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.dead_letter_records import (
    ITEM,
    MESSAGE,
    DeadLetter,
    LetterFilter,
    letter_from,
    retried_from,
    source_position,
    with_payload_kind,
)
from eventsource.core.dead_letter_retry import (
    retry_msg_id,
    retry_payload,
    retry_subject,
    retry_target,
)
from eventsource.core.errors import NotRetryable
from eventsource.core.messages import Result, Results, SubmitTransfers, inbox_decoder
from eventsource.core.model import AccountRef, Outcome, TransferRequest
from eventsource.core.subjects import dead_letter_retry_subject, parse_dead_letter_subject

T1 = TransferRequest(
    id="t1",
    debtor=AccountRef("bank-a", "a1"),
    creditor=AccountRef("bank-b", "b1"),
    amount="1",
    currency="EUR",
)
SUBMIT = msgspec.json.encode(SubmitTransfers(transfers=[T1]))
GHOST = Result(id="ghost", digest="0" * 24, outcome=Outcome.OK)


def letter(**fields: object) -> DeadLetter:
    base = {
        "seq": 7,
        "at_ms": 1_000,
        "participant": "bank-a",
        "reason": "PROTOCOL_VIOLATION",
        "detail": "",
        "source": "KV_ledger_0:37",
        "source_subject": "nb.0.to.bank-a.submit.t1",
        "payload_kind": MESSAGE,
        "size": 10,
        "msg_id": "abc",
    }
    return DeadLetter(**(base | fields))


def test_a_whole_message_goes_back_byte_for_byte_onto_its_inbox() -> None:
    target = retry_target(letter())
    assert (target.stream, target.subject) == ("KV_ledger_0", "nb.0.to.bank-a.submit.t1")
    assert (target.recipient, target.kind, target.consumer) == (
        "bank-a",
        "submit",
        "submit_bank-a_0",
    )
    assert retry_payload(letter(), target, SUBMIT, None) == SUBMIT


def test_an_item_goes_back_alone_in_a_message_of_its_kind_from_its_sender() -> None:
    others = Result(id="fine", digest="1" * 24, outcome=Outcome.OK)
    carrier = msgspec.json.encode(Results(sender="bank-b", results=[others, GHOST]))
    item = letter(payload_kind=ITEM, source_subject="nb.0.to.bank-a.result.x")
    sent = retry_payload(item, retry_target(item), msgspec.json.encode(GHOST), carrier)
    assert inbox_decoder.decode(sent) == Results(sender="bank-b", results=[GHOST])


def test_an_item_whose_carrier_is_gone_cannot_be_rebuilt() -> None:
    item = letter(payload_kind=ITEM, source_subject="nb.0.to.bank-a.result.x")
    with pytest.raises(NotRetryable, match="no longer stored"):
        retry_payload(item, retry_target(item), msgspec.json.encode(GHOST), None)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"source": "nb.core.bank-a.posting"}, "core NATS"),
        ({"reason": "ID_CONFLICT", "payload_kind": ITEM}, "submit it under a new id"),
        ({"source_subject": "$KV.ledger_0.bank-a.acct.a1"}, "ledger records"),
        ({"source": "KV_ledger_1:3"}, "not an inbox"),  # the subject is partition 0's
    ],
    ids=["core", "id-conflict", "ledger-record", "other-stream"],
)
def test_what_republishing_cannot_help_is_refused_with_what_to_do(fields, words) -> None:
    with pytest.raises(NotRetryable, match=words):
        retry_target(letter(**fields))


@pytest.mark.parametrize(
    ("payload", "subject", "words"),
    [
        (b"{not json", "nb.0.to.bank-a.submit.t1", "JSON is malformed"),
        (SUBMIT, "nb.0.to.bank-a.posting.t1", "a submit message on a posting subject"),
        (b'{"type":"submit","transfers":[]}', "nb.0.to.bank-a.submit.t1", "no items"),
    ],
    ids=["undecodable", "wrong-kind", "no-items"],
)
def test_a_message_that_would_be_dead_lettered_again_at_once_is_refused(
    payload, subject, words
) -> None:
    whole = letter(source_subject=subject, reason="UNDECODABLE")
    with pytest.raises(NotRetryable, match=f"dead-lettered again at once: .*{words}"):
        retry_payload(whole, retry_target(whole), payload, None)


def test_a_shared_store_submission_goes_back_to_the_shared_inbox() -> None:
    shared = letter(source="KV_shared:4", source_subject="nb.shared.to.bank-a.submit.t1")
    target = retry_target(shared)
    assert (target.stream, target.consumer) == ("KV_shared", "shared_bank-a")


def test_a_letter_from_an_old_subject_goes_back_on_the_new_layout_with_its_claimed_sender() -> None:
    whole = letter()  # arrived on nb.0.to.bank-a.submit.t1, before the sender was in subjects
    target = retry_target(whole)
    sent = retry_payload(whole, target, SUBMIT, None)
    assert retry_subject(target, sent) == "nb.0.to.bank-a.submit.bank-a.t1"
    item = letter(payload_kind=ITEM, source_subject="nb.0.to.bank-a.result.x")
    carrier = msgspec.json.encode(Results(sender="bank-b", results=[GHOST]))
    target = retry_target(item)
    sent = retry_payload(item, target, msgspec.json.encode(GHOST), carrier)
    assert retry_subject(target, sent) == "nb.0.to.bank-a.result.bank-b.x"
    shared = letter(source="KV_shared:4", source_subject="nb.shared.to.bank-a.submit.t1")
    target = retry_target(shared)
    assert retry_subject(target, SUBMIT) == "nb.shared.to.bank-a.submit.bank-a.t1"


def test_a_letter_on_the_new_layout_goes_back_on_its_own_subject() -> None:
    item = letter(payload_kind=ITEM, source_subject="nb.0.to.bank-a.result.bank-b.x")
    carrier = msgspec.json.encode(Results(sender="bank-b", results=[GHOST]))
    target = retry_target(item)
    sent = retry_payload(item, target, msgspec.json.encode(GHOST), carrier)
    assert retry_subject(target, sent) == "nb.0.to.bank-a.result.bank-b.x"


def test_a_subject_mismatch_is_never_republished() -> None:
    forged = letter(reason="SUBJECT_MISMATCH", source_subject="nb.0.to.bank-a.result.bank-c.x")
    with pytest.raises(NotRetryable, match="never republished"):
        retry_target(forged)
    # Nor is a payload that would be one: its sender claim differs from the subject's token.
    whole = letter(reason="PROTOCOL_VIOLATION", source_subject="nb.0.to.bank-a.result.bank-c.x")
    results = msgspec.json.encode(Results(sender="bank-b", results=[GHOST]))
    with pytest.raises(NotRetryable, match="names sender bank-c"):
        retry_payload(whole, retry_target(whole), results, None)


def test_every_retry_of_one_letter_carries_the_same_message_id() -> None:
    assert (
        retry_msg_id(letter())
        == retry_msg_id(letter(at_ms=5))
        != retry_msg_id(letter(msg_id="other"))
    )


def test_letters_stored_without_the_payload_header_are_told_apart_by_their_payload() -> None:
    old = letter(payload_kind=None)
    assert with_payload_kind(old, SUBMIT).payload_kind == MESSAGE
    assert with_payload_kind(old, msgspec.json.encode(GHOST)).payload_kind == ITEM
    junk = letter(payload_kind=None, reason="UNDECODABLE")
    assert with_payload_kind(junk, b'{"id": "x"}').payload_kind == MESSAGE


def test_subjects_and_headers_of_letters_and_retry_records() -> None:
    assert parse_dead_letter_subject("nb.dlq.bank-a") == ("bank-a", None)
    assert parse_dead_letter_subject(dead_letter_retry_subject("bank-a", 7)) == ("bank-a", 7)
    assert parse_dead_letter_subject("nb.dlq.bank-a.other") is None
    assert letter_from(9, 1, dead_letter_retry_subject("bank-a", 7), {}, 0) is None
    stored = letter_from(9, 1, "nb.dlq.bank-a", {"Natsbank-Payload": "item"}, 3)
    assert stored is not None and stored.payload_kind == ITEM and stored.reason == ""
    assert source_position("KV_ledger_0:37") == ("KV_ledger_0", 37)
    assert source_position("nb.core.bank-a.posting") is None
    retried = retried_from({"Natsbank-Republished": "KV_ledger_0:55"}, 2)
    assert retried is not None and (retried.stream, retried.seq, retried.at_ms) == (
        "KV_ledger_0",
        55,
        2,
    )


def test_filters_match_reason_participant_and_time() -> None:
    one = letter(at_ms=5_000)
    assert LetterFilter().matches(one)
    assert LetterFilter(reason="PROTOCOL_VIOLATION", participant="bank-a", since_ms=5_000).matches(
        one
    )
    assert not LetterFilter(reason="UNDECODABLE").matches(one)
    assert not LetterFilter(participant="bank-b").matches(one)
    assert not LetterFilter(since_ms=5_001).matches(one)
