"""JetStream mode's carrier: the outbox is in the ledger stream, committed with the state."""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from eventsource.core.faults import Fate, FaultInjector
from eventsource.core.messages import GiveUps, InboxMessage
from eventsource.core.subjects import parse_inbox_subject
from eventsource.core.workset import Write

log = logging.getLogger("natsbank.service")


class StreamOutbox:
    counts_sends = False  # "N attempts" is counted in time: the server, not we, resends
    adopt = None  # nothing waits in memory: the consumers hold every undelivered message

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    def admits(self) -> bool:
        return True  # the consumers' max_ack_pending is the flow control

    async def received(self, msgs: list[Msg]) -> list[Msg]:
        """Transport faults on received protocol messages (never submissions): a dropped
        delivery is left unacked, so the server redelivers it after the ack wait."""
        if not self.faults.plan.active:
            return msgs
        kept: list[Msg] = []
        for msg in msgs:
            where = parse_inbox_subject(msg.subject)
            if where is None or where.kind == "submit":
                kept.append(msg)
                continue
            fate, delay = self.faults.fate()
            if fate is Fate.DELAY:
                try:
                    await msg.nak(delay=delay)
                except Exception as exc:  # a lost nak is a redelivery after the ack wait
                    log.debug("nak failed: %s", exc)
            elif fate is not Fate.DROP:
                kept.extend([msg] * (2 if fate is Fate.DUPLICATE else 1))
        return kept

    def within_bounds(
        self, received: list[tuple[Msg, InboxMessage]]
    ) -> list[tuple[Msg, InboxMessage]]:
        return received  # an unconfirmed record waits in the ledger, not in memory

    def split(self, writes: list[Write]) -> tuple[list[Write], list[Write]]:
        return writes, []

    async def delivered(
        self, decision, after: list[Write], messages: list[InboxMessage | GiveUps]
    ) -> None:
        pass  # committed with the state: nothing left to send

    async def run(self, process, batch: int, stop, give_up) -> None:
        return None  # the consumers deliver: no loop of its own

    def figures(self) -> dict:
        return {}

    def quarantined(self) -> set[str]:
        return set()  # it reads no records
