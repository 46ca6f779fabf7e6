"""The shared store's side of the engine (`serve --store shared`): decode a participant's
submissions, and decide a group of them into one atomic batch on KV_shared.

No protocol messages follow: the batch that debits the debtor also credits the creditor and
records the outcome, so there is nothing to send, resend, confirm or compensate. Every
instance of every participant writes the same stream, so an account moved by anyone since it
was read refuses the whole batch (expected sequence), and the group is decided again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.state_reader import StateReader
from eventsource.core.dispatch import check_message
from eventsource.core.errors import ProtocolError
from eventsource.core.messages import SubmitTransfers, inbox_decoder
from eventsource.core.model import is_token
from eventsource.core.shared.decision import SharedGroup, decide_transfer, keys_of
from eventsource.core.shared.layout import (
    SHARED_STREAM,
    apply_shared_entry,
    decode_shared_state,
    parse_submit_subject,
    shared_subject,
)
from eventsource.core.subject_check import check_subject
from eventsource.core.subjects import is_account_key, is_reserved
from eventsource.services.engine import Distrust, Piece


class SharedStateReader(StateReader):
    """The state reader and cache, pointed at the shared stream."""

    decode = staticmethod(decode_shared_state)
    apply_entry = staticmethod(apply_shared_entry)

    def __init__(self, nc: Client) -> None:
        super().__init__(nc, 0)
        self._stream = SHARED_STREAM

    def subject(self, key: str) -> str:
        return shared_subject(key)


class SharedDecider:
    def __init__(self, nc: Client, participant: str, *, accepts_old_subjects: bool = True) -> None:
        self.participant = participant
        self.accepts_old_subjects = accepts_old_subjects  # the old layout
        self.reader = SharedStateReader(nc)

    def decode(self, msg: Msg) -> SubmitTransfers:
        where = parse_submit_subject(msg.subject)
        if where is None:
            raise ProtocolError(f"subject {msg.subject} is not a submission subject")
        message = inbox_decoder.decode(msg.data)
        if not isinstance(message, SubmitTransfers):
            raise ProtocolError("only submissions go to the shared store's inbox")
        check_message(message, self.participant)
        check_subject(
            message,
            participant=self.participant,
            recipient=where[0],
            sender=where[1],
            accepts_old=self.accepts_old_subjects,
        )
        return message

    def remember(self, decision: SharedGroup, seqs: dict[str, int]) -> None:
        self.reader.remember(decision.changed_states, seqs)

    def figures(self) -> dict:
        return {}  # no counters of its own: the service counts what it decides

    def quarantined(self) -> set[str]:
        return self.reader.quarantined

    async def decide(
        self, group: Sequence[Piece], distrust: Distrust
    ) -> tuple[SharedGroup, list[Msg | None]]:
        requests = [r for piece in group for r in piece.message.transfers]
        records, accounts = keys_of(self.participant, requests)
        fresh = distrust is Distrust.ALL
        stale = (
            {k for k in accounts if is_account_key(k)} if distrust is Distrust.ACCOUNTS else set()
        )
        loaded = await self.reader.load(accounts, fresh=fresh, likely_new=records, stale=stale)
        receivers = {
            r.creditor.participant
            for r in requests
            if is_token(r.creditor.participant) and not is_reserved(r.creditor.participant)
        }
        decision = SharedGroup(
            participant=self.participant,
            loaded=loaded,
            known_participants=await self.reader.known_participants(receivers),
            now_ms=int(time.time() * 1000),
        )
        sources: list[Msg | None] = []
        for piece in group:
            for request in piece.message.transfers:
                before = len(decision.dead_letters)
                decide_transfer(decision, request)
                sources.extend([piece.msg] * (len(decision.dead_letters) - before))
        return decision, sources
