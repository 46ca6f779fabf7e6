"""The independent store's side of the engine: decode an inbox message of any kind, and decide a
group (or the give-up clock's commands) over the states it needs, as one WorkSet."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg

from eventsource.adapters.state_reader import StateReader
from eventsource.core import trace
from eventsource.core.dead_letter_records import RETRY_OF_HEADER
from eventsource.core.dispatch import account_keys_of, apply_message, check_message, keys_to_load
from eventsource.core.errors import ProtocolError
from eventsource.core.history import KEEP_EVERYTHING, History, IdPlace, place_id
from eventsource.core.limits import ARCHIVE_LOOKUPS_IN_FLIGHT
from eventsource.core.messages import (
    KIND_OF,
    InboxMessage,
    Postings,
    SubmitTransfers,
    inbox_decoder,
    items_of,
)
from eventsource.core.model import is_token
from eventsource.core.subject_check import check_subject
from eventsource.core.subjects import (
    is_account_key,
    is_reserved,
    parse_core_subject,
    parse_inbox_subject,
    transfer_id_of_key,
)
from eventsource.core.workset import WorkSet
from eventsource.services.archived import NO_ARCHIVE, ArchivedRecords
from eventsource.services.engine import Distrust, Piece


class IndependentDecider:
    def __init__(
        self,
        nc: Client,
        participant: str,
        home: int,
        *,
        history: History = KEEP_EVERYTHING,
        archive: ArchivedRecords = NO_ARCHIVE,
        accepts_old_subjects: bool = True,
    ) -> None:
        self.participant = participant
        self.accepts_old_subjects = accepts_old_subjects  # the old layout (no sender token)
        self.home = home
        keep_s = history.horizon_ms / 1000 if history.horizon_ms is not None else None
        self.reader = StateReader(nc, home, keep_s=keep_s)
        self.history = history
        self.archive = archive

    def decode(self, msg: Msg) -> InboxMessage:
        """A message on this participant's inbox (JetStream or core subject) of the kind its
        subject names."""
        where = parse_inbox_subject(msg.subject) or parse_core_subject(msg.subject)
        if where is None:
            raise ProtocolError(f"subject {msg.subject} is not an inbox subject")
        message = inbox_decoder.decode(msg.data)
        if KIND_OF[type(message)].value != where.kind:
            raise ProtocolError(f"a {KIND_OF[type(message)]} message on a {where.kind} subject")
        check_message(message, self.participant)
        check_subject(
            message,
            participant=self.participant,
            recipient=where.recipient,
            sender=where.sender,
            accepts_old=self.accepts_old_subjects,
        )
        return message

    def remember(self, decision: WorkSet, seqs: dict[str, int]) -> None:
        self.reader.remember(decision.changed_states, seqs)

    def figures(self) -> dict:
        return {}  # no counters of its own: the service counts what it decides

    def quarantined(self) -> set[str]:
        return self.reader.quarantined

    async def decide(
        self, group: Sequence[Piece], distrust: Distrust, *, remote: dict | None = None
    ) -> tuple[WorkSet, list[Msg | None]]:
        """Read what the group needs (`distrust`: see Distrust), then decide every piece.
        `remote`: a proxy's verdicts of its remote bank (services/remote_proxy.py)."""
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
        now_ms = int(time.time() * 1000)
        old = self._old_records(group, now_ms)  # read exactly, then looked up in the archive
        new -= old
        keys |= old
        fresh = distrust is Distrust.ALL
        stale = {k for k in keys if is_account_key(k)} if distrust is Distrust.ACCOUNTS else set()
        stale |= old
        loaded = await self.reader.load(keys, fresh=fresh, likely_new=new, stale=stale)
        loaded |= await self._archived({k for k in old if loaded[k][0] is None})
        more = account_keys_of(participant, [s for s, _ in loaded.values()]) - keys
        if more:
            loaded |= await self.reader.load(more, fresh=distrust > Distrust.NONE)
        known = await self.reader.known_participants(receivers) if receivers else frozenset()
        ws = WorkSet(
            participant=participant,
            partition=self.home,
            loaded=loaded,
            known_participants=known,
            now_ms=now_ms,
            token=uuid.uuid4().hex[:16],
            history=self.history,
            remote=remote,
        )
        for piece in group:  # trace context in: the items' own, else the message's header
            header = ((piece.msg.headers or {}) if piece.msg is not None else {}).get(trace.HEADER)
            ws.traces.update(trace.traces_of(items_of(piece.message), header))
        sources: list[Msg | None] = []
        for piece in group:
            before = len(ws.dead_letters)
            ws.acked_ms = acked_ms(piece, now_ms)
            apply_message(ws, piece.message)
            sources.extend([piece.msg] * (len(ws.dead_letters) - before))
        return ws, sources

    def _old_records(self, group: Sequence[Piece], now_ms: int) -> set[str]:
        """The transfer records the group names whose id is older than the live horizon
        (core/history.py): the live ledger may have passed them to the archive. A submission's
        id is placed at its ACK, any other message's at the time it is decided."""
        if not self.history.bounded:
            return set()
        old = set()
        for piece in group:
            if first_posting_delivery(piece):
                continue  # its receiver records exist nowhere yet, archive included (below)
            at = acked_ms(piece, now_ms)
            new, named = keys_to_load(self.participant, piece.message)
            for key in new | named:
                if is_account_key(key):
                    continue
                if place_id(transfer_id_of_key(key), at, self.history) is IdPlace.OLD:
                    old.add(key)
        return old

    async def _archived(self, keys: set[str]) -> dict[str, tuple]:
        """The archive's final state of records the live ledger no longer holds. They are
        loaded like live ones at sequence 0: no step writes a final record again."""
        gate = asyncio.Semaphore(ARCHIVE_LOOKUPS_IN_FLIGHT)

        async def look_up(key: str) -> tuple[str, bytes | None]:
            async with gate:
                return key, await self.archive.latest(key)

        found = await asyncio.gather(*(look_up(key) for key in keys))
        return {
            key: (self.reader.decoded(key, data, 0), 0) for key, data in found if data is not None
        }


def first_posting_delivery(piece: Piece) -> bool:
    """A posting message from the ledger, delivered for the first time and not republished
    by `dead-letters retry`. In JetStream mode a submitter writes the posting of a transfer
    once, in the atomic batch of the transfer's first record (the in-stream outbox); a receiver
    record exists only once some delivery of it was decided, and is archived only once final.
    So the receiver records it names are not in the archive, however old their ids: no lookup
    (a lagging receiver would otherwise look up every posting). A redelivery (another instance
    may have decided it) and core mode (resends are new messages) are looked up."""
    msg = piece.msg
    if msg is None or not isinstance(piece.message, Postings):
        return False
    if RETRY_OF_HEADER in (msg.headers or {}):
        return False
    try:
        return msg.metadata.num_delivered == 1
    except Exception:  # a core NATS message: no JetStream delivery count
        return False


def acked_ms(piece: Piece, now_ms: int) -> int:
    """When the server stored a submission (its ACK); `now_ms` for anything else."""
    if piece.msg is None or not isinstance(piece.message, SubmitTransfers):
        return now_ms
    try:
        return int(piece.msg.metadata.timestamp.timestamp() * 1000)
    except Exception:  # not a JetStream message: no ACK time
        return now_ms
