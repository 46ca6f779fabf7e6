"""Decide a group of inbox messages (or of the give-up clock's commands) over the states it
needs: one WorkSet, committed by the service as one atomic batch."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from nats.aio.msg import Msg

from eventsource.adapters.ledger_state import LedgerState
from eventsource.core import trace
from eventsource.core.dispatch import account_keys_of, apply_message, keys_to_load
from eventsource.core.messages import GiveUps, InboxMessage, SubmitTransfers, items_of
from eventsource.core.model import is_token
from eventsource.core.subjects import is_account_key, is_reserved
from eventsource.core.workset import WorkSet


@dataclass(frozen=True, slots=True)
class Entry:
    msg: Msg | None  # None for a give-up: nothing to ack, nobody redelivers it
    message: InboxMessage | GiveUps
    last_piece: bool


async def decide_group(
    state: LedgerState,
    participant: str,
    home: int,
    group: list[Entry],
    sources: list[Msg | None],
    *,
    distrust: int,
) -> WorkSet:
    """Decide the group; `sources` receives, per dead letter, the message it came from.
    `distrust`: 0 trusts the KV, 1 re-reads the accounts, 2 reads everything from the leader."""
    sources.clear()
    keys: set[str] = set()
    new: set[str] = set()
    receivers: set[str] = set()
    for entry in group:
        message = entry.message
        likely_new, named = keys_to_load(participant, message)
        new |= likely_new
        keys |= named
        if isinstance(message, SubmitTransfers):
            receivers |= {
                t.creditor.participant
                for t in message.transfers
                if is_token(t.creditor.participant) and not is_reserved(t.creditor.participant)
            }
    fresh = distrust >= 2
    stale = {k for k in keys if is_account_key(k)} if distrust == 1 else set()
    loaded = await state.load(keys, fresh=fresh, likely_new=new, stale=stale)
    more = account_keys_of(participant, [s for s, _ in loaded.values()]) - keys
    if more:
        loaded |= await state.load(more, fresh=fresh or distrust == 1)
    known = await state.known_participants(receivers) if receivers else frozenset()
    ws = WorkSet(
        participant=participant,
        partition=home,
        loaded=loaded,
        known_participants=known,
        now_ms=int(time.time() * 1000),
        token=uuid.uuid4().hex[:16],
    )
    for entry in group:  # trace context in: the items' own, else the message's header
        header = ((entry.msg.headers or {}) if entry.msg is not None else {}).get(trace.HEADER)
        ws.traces.update(trace.traces_of(items_of(entry.message), header))
    for entry in group:
        before = len(ws.dead_letters)
        apply_message(ws, entry.message)
        sources.extend([entry.msg] * (len(ws.dead_letters) - before))
    return ws
