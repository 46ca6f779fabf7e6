"""validate_transfer: what a submitter n accepts, and how a transfer's content is fingerprinted."""

from __future__ import annotations

import pytest

from eventsource.core.errors import DomainError, ProtocolError, RejectionCause
from eventsource.core.model import MAX_COMMENT, as_recorded, validate_transfer
from tests.unit.simulation import request


def test_a_valid_request_becomes_a_transfer_with_the_canonical_amount():
    transfer = validate_transfer(request("t1", "10.5"), "n")
    assert transfer.amount == "10.50"
    assert transfer.minor == 1050
    assert (transfer.debtor.participant, transfer.creditor.account) == ("n", "bob")


def test_debtor_and_creditor_the_same_account_is_rejected_as_same_account():
    with pytest.raises(DomainError) as refused:
        validate_transfer(request("t1", creditor=("n", "alice")), "n")
    assert refused.value.cause is RejectionCause.SAME_ACCOUNT


@pytest.mark.parametrize(
    ("debtor", "creditor"),
    [(("n", "bob"), ("p", "alice")), (("n", "alice"), ("p", "alice")), (("n", "a"), ("n", "b"))],
)
def test_different_accounts_are_not_the_same_account(debtor, creditor):
    assert validate_transfer(request("t1", debtor=debtor, creditor=creditor), "n")


BAD_TOKENS = ["", "a.b", "a b", "*", ">", "x" * 65, "é", "a\n"]


@pytest.mark.parametrize("bad", BAD_TOKENS)
@pytest.mark.parametrize("where", ["debtor account", "creditor participant", "creditor account"])
def test_names_that_are_not_plain_tokens_are_rejected_as_invalid_transfer(bad, where):
    debtor, creditor = ["n", "alice"], ["p", "bob"]
    target = debtor if where.startswith("debtor") else creditor
    target[0 if where.endswith("participant") else 1] = bad
    with pytest.raises(DomainError) as refused:
        validate_transfer(request("t1", debtor=tuple(debtor), creditor=tuple(creditor)), "n")
    assert refused.value.cause is RejectionCause.INVALID_TRANSFER


def test_a_token_may_be_64_characters_long():
    assert validate_transfer(request("t" * 64, creditor=("p" * 64, "b" * 64)), "n")


@pytest.mark.parametrize("bad_id", BAD_TOKENS)
def test_an_unusable_id_is_a_protocol_error_because_nothing_can_be_recorded(bad_id):
    with pytest.raises(ProtocolError):
        validate_transfer(request(bad_id), "n")


def test_an_unusable_id_is_not_a_rejection():
    assert not issubclass(ProtocolError, DomainError)


def test_a_debtor_at_another_participant_than_the_submitter_is_invalid():
    with pytest.raises(DomainError, match="not the submitter") as refused:
        validate_transfer(request("t1", debtor=("m", "alice")), "n")
    assert refused.value.cause is RejectionCause.INVALID_TRANSFER


def test_a_comment_of_the_maximum_length_is_kept():
    transfer = validate_transfer(request("t1", comment="c" * MAX_COMMENT), "n")
    assert transfer.comment == "c" * MAX_COMMENT


def test_a_longer_comment_is_invalid():
    with pytest.raises(DomainError, match="comment") as refused:
        validate_transfer(request("t1", comment="c" * (MAX_COMMENT + 1)), "n")
    assert refused.value.cause is RejectionCause.INVALID_TRANSFER


@pytest.mark.parametrize(
    ("amount", "currency", "cause"),
    [
        (10.5, "EUR", RejectionCause.INVALID_AMOUNT),
        ("0.00", "EUR", RejectionCause.INVALID_AMOUNT),
        ("1.5", "JPY", RejectionCause.INVALID_AMOUNT),
        ("1.00", "XXX", RejectionCause.UNKNOWN_CURRENCY),
    ],
)
def test_amount_and_currency_refusals_keep_their_cause(amount, currency, cause):
    with pytest.raises(DomainError) as refused:
        validate_transfer(request("t1", amount, currency=currency), "n")
    assert refused.value.cause is cause


@pytest.mark.parametrize("same", ["10.5", "10.50", "010.50", "0010.5"])
def test_the_digest_is_taken_over_the_canonical_amount(same):
    reference = validate_transfer(request("t1", "10.50"), "n").digest
    assert validate_transfer(request("t1", same), "n").digest == reference


@pytest.mark.parametrize(
    "other",
    [
        request("t1", "10.51"),
        request("t2", "10.50"),
        request("t1", "10.50", creditor=("p", "bobby")),
        request("t1", "10.50", creditor=("q", "bob")),
        request("t1", "10.50", debtor=("n", "alicia")),
        request("t1", "10.50", currency="USD"),
        request("t1", "10.50", comment="rent"),
    ],
)
def test_different_content_gives_a_different_digest(other):
    reference = validate_transfer(request("t1", "10.50"), "n").digest
    assert validate_transfer(other, "n").digest != reference


def test_a_refused_request_with_a_valid_amount_is_recorded_with_the_canonical_amount():
    refused = request("t1", "010.5", creditor=("n", "alice"))
    assert as_recorded(refused).amount == "10.50"
    assert (
        as_recorded(refused).digest
        == as_recorded(request("t1", "10.50", creditor=("n", "alice"))).digest
    )


def test_a_refused_request_is_recorded_with_its_amount_as_text():
    assert as_recorded(request("t1", 10.5)).amount == "10.5"
    assert as_recorded(request("t1", "abc")).amount == "abc"
    assert as_recorded(request("t1", "9" * 100)).amount == "9" * 40
    assert as_recorded(request("t1", comment="c" * 500)).comment == "c" * MAX_COMMENT
