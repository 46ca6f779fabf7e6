"""The sender is in the inbox subject (issue 13): both layouts are read, and a receiver refuses a
message whose subject disagrees with what it claims."""

from __future__ import annotations

import msgspec
import pytest

from eventsource.core.errors import DeadLetterReason, ProtocolError, SubjectMismatch
from eventsource.core.messages import (
    Confirm,
    Confirms,
    Kind,
    Posting,
    Postings,
    Result,
    Results,
    SubmitTransfers,
)
from eventsource.core.model import (
    AccountRef,
    Outcome,
    Transfer,
    TransferRequest,
    validate_transfer,
)
from eventsource.core.shared.layout import (
    parse_submit_subject,
    submit_filter,
    submit_subject,
    submitter_of_submit_subject,
)
from eventsource.core.subject_check import check_subject, claimed_sender
from eventsource.core.subjects import (
    RESERVED_NAMES,
    core_filter,
    core_subject,
    inbox_filter,
    inbox_subject,
    parse_core_subject,
    parse_inbox_subject,
    participant_problem,
    protocol_filters,
    submission_subject,
)
from eventsource.core.subjects import (
    submit_filter as ledger_submit_filter,
)
from tests.subject_match import matches  # NATS subject matching, token by token

REQUEST = TransferRequest(
    id="t1",
    debtor=AccountRef("bank-a", "a1"),
    creditor=AccountRef("bank-b", "b1"),
    amount="1.00",
    currency="EUR",
)


def transfer(debtor: str = "bank-a") -> Transfer:
    request = msgspec.structs.replace(REQUEST, debtor=AccountRef(debtor, "a1"))
    return validate_transfer(request, debtor)


def posting(sender: str = "bank-a", debtor: str = "bank-a") -> Postings:
    t = transfer(debtor)
    return Postings(sender=sender, postings=[Posting(transfer=t, digest=t.digest)])


def cancel(sender: str = "bank-a", debtor: str = "bank-a") -> Confirms:
    t = transfer(debtor)
    item = Confirm(id=t.id, digest=t.digest, outcome=Outcome.CANCELLED, transfer=t)
    return Confirms(sender=sender, confirms=[item])


RESULT = Results(sender="bank-b", results=[Result(id="t1", digest="d", outcome=Outcome.OK)])
CONFIRM = Confirms(sender="bank-a", confirms=[Confirm(id="t1", digest="d", outcome=Outcome.OK)])
SUBMIT = SubmitTransfers(transfers=[REQUEST])


@pytest.mark.parametrize("kind", list(Kind))
def test_both_layouts_of_every_kind_are_read(kind: Kind) -> None:
    new = inbox_subject(3, "bank-b", kind, "bank-a", "tok-1")
    assert new == f"nb.3.to.bank-b.{kind.value}.bank-a.tok-1"
    assert parse_inbox_subject(new) == (3, "bank-b", kind.value, "bank-a", "tok-1")
    old = f"nb.3.to.bank-b.{kind.value}.tok-1"  # what the stored history holds for ever
    assert parse_inbox_subject(old) == (3, "bank-b", kind.value, None, "tok-1")


@pytest.mark.parametrize(
    "subject",
    [
        "nb.x.to.bank-b.posting.bank-a.t",
        "nb.0.from.bank-b.posting.bank-a.t",
        "nb.0.to.bank-b.posting",
        "nb.0.to.bank-b.posting.bank-a.t.extra",
        "xx.0.to.bank-b.posting.bank-a.t",
        "$KV.ledger_0.bank-a.out.t1",
        "nb.dlq.bank-a",
    ],
)
def test_what_is_no_inbox_subject_parses_as_none(subject: str) -> None:
    assert parse_inbox_subject(subject) is None


def test_a_submission_names_its_own_bank_as_sender() -> None:
    assert submission_subject(0, "bank-a", "t1") == "nb.0.to.bank-a.submit.bank-a.t1"
    assert claimed_sender(SUBMIT, "bank-a") == "bank-a"
    assert claimed_sender(RESULT, "bank-a") == "bank-b"


def test_the_consumer_filters_match_both_layouts() -> None:
    for kind in Kind:
        new = inbox_subject(0, "bank-b", kind, "bank-a", "t")
        old = f"nb.0.to.bank-b.{kind.value}.t"
        filters = [*protocol_filters(0, "bank-b"), ledger_submit_filter(0, "bank-b")]
        for subject in (new, old):
            assert matches(subject, inbox_filter(0, "bank-b"))
            assert sum(matches(subject, f) for f in filters) == 1
    assert matches(core_subject("bank-b", Kind.RESULT, "bank-a"), core_filter("bank-b"))
    assert matches("nb.core.bank-b.result", core_filter("bank-b"))
    assert matches(submit_subject("bank-a", "t"), submit_filter("bank-a"))
    assert matches("nb.shared.to.bank-a.submit.t", submit_filter("bank-a"))


def test_core_subjects_carry_the_sender_and_the_old_form_still_parses() -> None:
    subject = core_subject("bank-b", Kind.POSTING, "bank-a")
    assert subject == "nb.core.bank-b.posting.bank-a"
    assert parse_core_subject(subject) == ("bank-b", "posting", "bank-a")
    assert parse_core_subject("nb.core.bank-b.posting") == ("bank-b", "posting", None)
    assert parse_core_subject("nb.core.bank-b") is None
    assert parse_core_subject("nb.core.bank-b.posting.bank-a.x") is None


def test_shared_store_submissions_carry_the_sender_too() -> None:
    assert submit_subject("bank-a", "t") == "nb.shared.to.bank-a.submit.bank-a.t"
    assert parse_submit_subject(submit_subject("bank-a", "t")) == ("bank-a", "bank-a")
    assert parse_submit_subject("nb.shared.to.bank-a.submit.t") == ("bank-a", None)
    assert submitter_of_submit_subject("nb.shared.to.bank-a.submit.bank-c.t") == "bank-a"
    assert parse_submit_subject("nb.shared.to.bank-a.posting.bank-a.t") is None


@pytest.mark.parametrize(
    ("message", "recipient", "sender"),
    [
        (SUBMIT, "bank-a", "bank-a"),
        (posting(), "bank-b", "bank-a"),
        (RESULT, "bank-a", "bank-b"),
        (CONFIRM, "bank-b", "bank-a"),
        (cancel(), "bank-b", "bank-a"),
    ],
)
def test_a_message_that_agrees_with_its_subject_passes(message, recipient, sender) -> None:
    check_subject(message, participant=recipient, recipient=recipient, sender=sender)
    check_subject(message, participant=recipient, recipient=recipient, sender=None)


@pytest.mark.parametrize(
    ("case", "message", "recipient", "sender", "says"),
    [
        ("submit for another bank", SUBMIT, "bank-a", "bank-c", "names sender bank-c"),
        ("posting as another bank", posting("bank-a"), "bank-b", "bank-c", "the message bank-a"),
        ("posting of another's debtor", posting("bank-c", "bank-a"), "bank-b", "bank-c", "debits"),
        ("result as another bank", RESULT, "bank-a", "bank-c", "names sender bank-c"),
        ("confirm as another bank", CONFIRM, "bank-b", "bank-c", "names sender bank-c"),
        ("cancel of another's debtor", cancel("bank-c", "bank-a"), "bank-b", "bank-c", "debits"),
    ],
)
def test_a_subject_that_disagrees_with_its_message_is_a_mismatch(
    case, message, recipient, sender, says
) -> None:
    with pytest.raises(SubjectMismatch, match=says) as raised:
        check_subject(message, participant=recipient, recipient=recipient, sender=sender)
    assert raised.value.reason is DeadLetterReason.SUBJECT_MISMATCH
    assert isinstance(raised.value, ProtocolError)  # dead-lettered, never decided


def test_a_subject_for_another_recipient_is_a_mismatch() -> None:
    with pytest.raises(SubjectMismatch, match="names recipient bank-c"):
        check_subject(RESULT, participant="bank-a", recipient="bank-c", sender="bank-b")


def test_the_old_layout_is_refused_once_the_setting_says_so() -> None:
    check_subject(RESULT, participant="bank-a", recipient="bank-a", sender=None, accepts_old=True)
    with pytest.raises(SubjectMismatch, match="no sender token"):
        check_subject(
            RESULT, participant="bank-a", recipient="bank-a", sender=None, accepts_old=False
        )


def test_fund_is_a_reserved_name() -> None:
    assert "fund" in RESERVED_NAMES
    assert participant_problem("fund") is not None


def test_the_old_layout_setting_travels_in_the_topology_record() -> None:
    from eventsource.adapters.registry import TopologyRecord, record_from
    from eventsource.adapters.topology import InboxConfig, Topology

    assert record_from(b'{"partitions":1}').accepts_old_subjects  # recorded before the setting
    refusing = TopologyRecord.of(Topology(inbox=InboxConfig(old_subjects="refuse")))
    assert not record_from(msgspec.json.encode(refusing)).accepts_old_subjects
    assert b"old_subjects" not in msgspec.json.encode(TopologyRecord.of(Topology()))
