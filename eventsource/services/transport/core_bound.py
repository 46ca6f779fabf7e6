"""Core-NATS mode's bound per sender (issue 13): at most `per_peer` of one sender's transfers
may wait at this instance for the sender's confirm. Past it, the sender's new postings are shed
before they are decided, as a full inbox sheds them, and its resend clock sends them again; a
bank that never confirms stops only itself. The cut itself is pure (`core/resend.py`)."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from eventsource.core.messages import InboxMessage
from eventsource.core.resend import ResendSchedule, within_bound
from eventsource.core.subjects import parse_core_subject

log = logging.getLogger("natsbank.core")


class SenderBound:
    def __init__(self, per_peer: int) -> None:
        self.per_peer = per_peer
        self.shed = 0  # postings left undecided because their sender was at its bound
        self._at_bound: set[str] = set()  # senders being shed: logged once until below again

    def cut(
        self, received: list[tuple[Msg, InboxMessage]], schedule: ResendSchedule
    ) -> list[tuple[Msg, InboxMessage]]:
        """The messages with each sender's postings cut to the room its bound leaves, given
        what `schedule` already waits on. A fetch from the JetStream inbox passes whole: acking
        part of a message there would lose the rest."""
        if any(parse_core_subject(msg.subject) is None for msg, _ in received):
            return received
        kept, shed = within_bound(received, schedule.unconfirmed_from, self.per_peer)
        self.shed += shed.total()
        for sender in shed.keys() - self._at_bound:
            log.warning(
                "%s is at its bound of %d transfers waiting here for its confirmation: its new "
                "postings are shed until it confirms (logged again only after it dropped below)",
                sender,
                self.per_peer,
            )
        below = {s for s in self._at_bound if schedule.unconfirmed_from(s) < self.per_peer}
        self._at_bound = (self._at_bound - below) | shed.keys()
        return kept
