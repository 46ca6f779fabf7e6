"""Route each inbox message, item by item, to its protocol step; say which state it needs."""

from __future__ import annotations

import msgspec

from eventsource.core.errors import DeadLetterReason, ProtocolError
from eventsource.core.events import TransferState, encoder
from eventsource.core.messages import (
    MAX_ITEMS_PER_MESSAGE,
    Confirms,
    GiveUps,
    InboxMessage,
    Postings,
    Results,
    SubmitTransfers,
    items_of,
)
from eventsource.core.model import is_token
from eventsource.core.quarantine import Quarantined
from eventsource.core.saga import GiveUpReason, give_up
from eventsource.core.steps import admit_transfer, decide_posting, record_confirm, settle_result
from eventsource.core.subjects import account_key, incoming_key, outgoing_key
from eventsource.core.workset import WorkSet


def check_message(message: InboxMessage, recipient: str) -> None:
    """Message-level checks; a failure sends the whole message to the dead-letter stream."""
    items = items_of(message)
    if not items:
        raise ProtocolError("message carries no items")
    sender = getattr(message, "sender", recipient)
    if not is_token(sender):
        raise ProtocolError(f"sender {sender!r:.40} is not a participant name")


def split_message(
    message: InboxMessage | GiveUps, size: int = MAX_ITEMS_PER_MESSAGE
) -> list[InboxMessage | GiveUps]:
    """Cut a big message into pieces that each fit one atomic batch. Safe because every
    transfer's step is atomic on its own; the message is acked after its last piece."""
    items = items_of(message)
    if len(items) <= size:
        return [message]
    field = _ITEMS_FIELD[type(message)]
    return [
        msgspec.structs.replace(message, **{field: items[start : start + size]})
        for start in range(0, len(items), size)
    ]


_ITEMS_FIELD = {
    SubmitTransfers: "transfers",
    Postings: "postings",
    Results: "results",
    Confirms: "confirms",
    GiveUps: "give_ups",
}


def apply_message(ws: WorkSet, message: InboxMessage | GiveUps) -> None:
    """Decide every item; an item that breaks the protocol, or that touches a quarantined
    record, is dead-lettered on its own."""
    for item in items_of(message):
        stuck = quarantined_keys(ws, message, item)
        if stuck:
            detail = "; ".join(q.describe() for q in stuck)
            ws.dead_letter(DeadLetterReason.QUARANTINED, detail, encoder.encode(item))
            continue
        try:
            match message:
                case SubmitTransfers():
                    admit_transfer(ws, item)
                case Postings(sender=sender):
                    decide_posting(ws, sender, item)
                case Results(sender=sender):
                    settle_result(ws, sender, item)
                case Confirms(sender=sender):
                    record_confirm(ws, sender, item)
                case GiveUps():
                    give_up(ws, item.id, GiveUpReason(item.reason))
        except ProtocolError as exc:
            ws.dead_letter(exc.reason, str(exc), encoder.encode(item))


def quarantined_keys(ws: WorkSet, message: InboxMessage | GiveUps, item) -> list[Quarantined]:
    """The quarantined records (and accounts) deciding `item` would read."""
    new, keys = item_keys(ws.participant, message, item)
    named = new | keys
    named |= account_keys_of(ws.participant, [ws.state(k) for k in named])
    return [state for k in sorted(named) if isinstance(state := ws.state(k), Quarantined)]


def keys_to_load(participant: str, message: InboxMessage | GiveUps) -> tuple[set[str], set[str]]:
    """State keys named by the message: (records that are normally new, everything else).

    New records need not be read: their first write expects an empty subject, so a wrong guess
    costs one refused commit and a re-read, never a wrong decision.
    """
    keys: set[str] = set()
    new: set[str] = set()
    for item in items_of(message):
        item_new, item_other = item_keys(participant, message, item)
        new |= item_new
        keys |= item_other
    return new, keys


def item_keys(participant: str, message: InboxMessage | GiveUps, item) -> tuple[set[str], set[str]]:
    """(records that are normally new, everything else) one item of `message` names."""
    p = participant
    match message:
        case SubmitTransfers():
            new = {outgoing_key(p, item.id)} if is_token(item.id) else set()
            account = item.debtor.account
            return new, {account_key(p, account)} if is_token(account) else set()
        case Postings(sender=sender):
            tid, account = item.transfer.id, item.transfer.creditor.account
            new = {incoming_key(p, sender, tid)} if is_token(tid) else set()
            return new, {account_key(p, account)} if is_token(account) else set()
        case Results() | GiveUps():
            return set(), {outgoing_key(p, item.id)} if is_token(item.id) else set()
        case Confirms(sender=sender):
            return set(), {incoming_key(p, sender, item.id)} if is_token(item.id) else set()
    return set(), set()


def account_keys_of(participant: str, states: list[object]) -> set[str]:
    """The own accounts that loaded transfer records point to (second loading round)."""
    keys = set()
    for state in states:
        if isinstance(state, TransferState):
            ref = state.transfer.debtor if state.side == "submitter" else state.transfer.creditor
            if is_token(ref.account):
                keys.add(account_key(participant, ref.account))
    return keys
