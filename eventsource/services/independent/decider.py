"""The independent store's side of the engine: decode an inbox message of any kind, and decide a
group (or the give-up clock's commands) over the states it needs, as one WorkSet."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.state_reader import StateReader
from eventsource.core import trace
from eventsource.core.dispatch import account_keys_of, apply_message, check_message, keys_to_load
from eventsource.core.errors import ProtocolError
from eventsource.core.messages import (
    KIND_OF,
    InboxMessage,
    SubmitTransfers,
    inbox_decoder,
    items_of,
)
from eventsource.core.model import is_token
from eventsource.core.subjects import (
    is_account_key,
    is_reserved,
    parse_core_subject,
    parse_inbox_subject,
)
from eventsource.core.workset import WorkSet
from eventsource.services.engine import Distrust, Piece


class IndependentDecider:
    def __init__(self, nc: Client, participant: str, home: int) -> None:
        self.participant = participant
        self.home = home
        self.reader = StateReader(nc, home)

    def decode(self, msg: Msg) -> InboxMessage:
        """A message on this participant's inbox (JetStream or core subject) of the kind its
        subject names."""
        inbox = parse_inbox_subject(msg.subject)
        where = inbox[1:] if inbox is not None else parse_core_subject(msg.subject)
        if where is None or where[0] != self.participant:
            raise ProtocolError(f"subject {msg.subject} is not this participant's inbox")
        message = inbox_decoder.decode(msg.data)
        if KIND_OF[type(message)].value != where[1]:
            raise ProtocolError(f"a {KIND_OF[type(message)]} message on a {where[1]} subject")
        check_message(message, self.participant)
        return message

    def remember(self, decision: WorkSet, seqs: dict[str, int]) -> None:
        self.reader.remember(decision.changed_states, seqs)

    async def decide(
        self, group: Sequence[Piece], distrust: Distrust
    ) -> tuple[WorkSet, list[Msg | None]]:
        """Read what the group needs (`distrust`: see Distrust), then decide every piece."""
        participant = self.participant
        keys: set[str] = set()
        new: set[str] = set()
        receivers: set[str] = set()
        for piece in group:
            likely_new, named = keys_to_load(participant, piece.message)
            new |= likely_new
            keys |= named
            if isinstance(piece.message, SubmitTransfers):
                receivers |= {
                    t.creditor.participant
                    for t in piece.message.transfers
                    if is_token(t.creditor.participant) and not is_reserved(t.creditor.participant)
                }
        fresh = distrust is Distrust.ALL
        stale = {k for k in keys if is_account_key(k)} if distrust is Distrust.ACCOUNTS else set()
        loaded = await self.reader.load(keys, fresh=fresh, likely_new=new, stale=stale)
        more = account_keys_of(participant, [s for s, _ in loaded.values()]) - keys
        if more:
            loaded |= await self.reader.load(more, fresh=distrust > Distrust.NONE)
        known = await self.reader.known_participants(receivers) if receivers else frozenset()
        ws = WorkSet(
            participant=participant,
            partition=self.home,
            loaded=loaded,
            known_participants=known,
            now_ms=int(time.time() * 1000),
            token=uuid.uuid4().hex[:16],
        )
        for piece in group:  # trace context in: the items' own, else the message's header
            header = ((piece.msg.headers or {}) if piece.msg is not None else {}).get(trace.HEADER)
            ws.traces.update(trace.traces_of(items_of(piece.message), header))
        sources: list[Msg | None] = []
        for piece in group:
            before = len(ws.dead_letters)
            apply_message(ws, piece.message)
            sources.extend([piece.msg] * (len(ws.dead_letters) - before))
        return ws, sources
