"""Which messages may skip the archive lookup of an old id (issue 12): a JetStream posting on
its first delivery, never a redelivery, a republished dead letter, core mode or anything else."""

from __future__ import annotations

from types import SimpleNamespace

from eventsource.core.dead_letter_records import RETRY_OF_HEADER
from eventsource.core.messages import Confirms, Postings, SubmitTransfers
from eventsource.services.engine import Piece
from eventsource.services.independent.decider import first_posting_delivery


class CoreMsg:
    headers = None

    @property
    def metadata(self):
        raise ValueError("not a JetStream message")


def stored(delivered: int, headers: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(headers=headers, metadata=SimpleNamespace(num_delivered=delivered))


POSTINGS = Postings(sender="bank-a", postings=[])


def test_only_a_first_delivery_of_a_stored_posting_skips_the_lookup() -> None:
    assert first_posting_delivery(Piece(stored(1), POSTINGS, True))
    assert not first_posting_delivery(Piece(stored(2), POSTINGS, True))  # decided elsewhere?
    retried = stored(1, {RETRY_OF_HEADER: "DEADLETTER:7"})
    assert not first_posting_delivery(Piece(retried, POSTINGS, True))
    assert not first_posting_delivery(Piece(CoreMsg(), POSTINGS, True))  # resends are new
    assert not first_posting_delivery(Piece(None, POSTINGS, True))
    submit = SubmitTransfers(transfers=[])  # a client may resubmit an archived id
    assert not first_posting_delivery(Piece(stored(1), submit, True))
    assert not first_posting_delivery(
        Piece(stored(1), Confirms(sender="bank-a", confirms=[]), True)
    )
