"""Protocol messages on inbox subjects `nb.<k>.to.<Q>.<kind>.<S>.<token>` (S: the sender).

One message may carry many transfers between the same two participants (group commit); each
transfer inside stays idempotent on its own.
"""

from __future__ import annotations

import enum

import msgspec

from eventsource.core.errors import RejectionCause
from eventsource.core.limits import MAX_ITEMS_PER_MESSAGE
from eventsource.core.model import Outcome, Transfer, TransferRequest

# A message never carries more than this many transfers, so that one inbox message always fits,
# with its account events, in one atomic batch (server limit: 1000 messages).


class Kind(enum.StrEnum):
    SUBMIT = "submit"
    POSTING = "posting"
    RESULT = "result"
    CONFIRM = "confirm"


class SubmitTransfers(msgspec.Struct, frozen=True, kw_only=True, tag="submit"):
    """Client -> its own bank n: please send these. The JetStream PubAck is the ACK."""

    transfers: list[TransferRequest]


class Posting(msgspec.Struct, frozen=True, kw_only=True):
    transfer: Transfer
    digest: str
    # Set when n refused the transfer itself: p records it and must decline with this cause.
    refused: RejectionCause | None = None
    detail: str = ""
    # W3C traceparent of this hop (eventsource/core/trace.py); omitted on the wire when unset.
    trace: str | msgspec.UnsetType = msgspec.UNSET


class Postings(msgspec.Struct, frozen=True, kw_only=True, tag="posting"):
    """n -> p: phase 1, send."""

    sender: str
    postings: list[Posting]


class Result(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    digest: str
    outcome: Outcome
    cause: RejectionCause | None = None
    detail: str = ""
    trace: str | msgspec.UnsetType = msgspec.UNSET


class Results(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    """p -> n: phase 2, respond with the outcome."""

    sender: str
    results: list[Result]


class Confirm(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    digest: str
    outcome: Outcome
    # Only on a CANCEL (outcome CANCELLED): the transfer itself, so that a receiver that never
    # saw the posting can leave a tombstone record (eventsource/core/saga.py).
    transfer: Transfer | msgspec.UnsetType = msgspec.UNSET
    trace: str | msgspec.UnsetType = msgspec.UNSET


class Confirms(msgspec.Struct, frozen=True, kw_only=True, tag="confirm"):
    """n -> p: phase 3, the outcome was received."""

    sender: str
    confirms: list[Confirm]


InboxMessage = SubmitTransfers | Postings | Results | Confirms


class GiveUp(msgspec.Struct, frozen=True):
    id: str
    reason: str  # a saga.GiveUpReason


class GiveUps(msgspec.Struct, frozen=True, kw_only=True):
    """Not a wire message: n's own give-up clock asks its service to give up on these
    transfers, and the service decides and commits them like an inbox message."""

    give_ups: list[GiveUp]


KIND_OF = {
    SubmitTransfers: Kind.SUBMIT,
    Postings: Kind.POSTING,
    Results: Kind.RESULT,
    Confirms: Kind.CONFIRM,
}

inbox_decoder = msgspec.json.Decoder(InboxMessage)


def items_of(message: InboxMessage | GiveUps) -> list:
    match message:
        case SubmitTransfers(transfers=items) | Postings(postings=items):
            return items
        case Results(results=items) | Confirms(confirms=items):
            return items
        case GiveUps(give_ups=items):
            return items
    raise TypeError(type(message))


# Well under the ledger's max_msg_size (256 KiB): a comment of 280 escaped characters makes an
# item up to ~2 KiB, so counting items alone is not enough.
MAX_MESSAGE_BYTES = 128 * 1024
_item_encoder = msgspec.json.Encoder()


def cut_items(items: list) -> list[list]:
    """Cut items into messages of at most MAX_ITEMS_PER_MESSAGE items and MAX_MESSAGE_BYTES."""
    chunks: list[list] = [[]]
    size = 0
    for item in items:
        item_size = len(_item_encoder.encode(item)) + 1
        if chunks[-1] and (
            len(chunks[-1]) >= MAX_ITEMS_PER_MESSAGE or size + item_size > MAX_MESSAGE_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


_MESSAGE_OF_KIND = {Kind.POSTING: Postings, Kind.RESULT: Results, Kind.CONFIRM: Confirms}
_ITEMS_FIELD = {Kind.POSTING: "postings", Kind.RESULT: "results", Kind.CONFIRM: "confirms"}


def bundle(sender: str, kind: Kind, items: list) -> list[InboxMessage]:
    """The protocol messages that carry `items` from `sender`, cut to size."""
    return [
        _MESSAGE_OF_KIND[kind](sender=sender, **{_ITEMS_FIELD[kind]: chunk})
        for chunk in cut_items(items)
    ]
